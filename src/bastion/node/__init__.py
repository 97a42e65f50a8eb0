"""The node: the state machine run as a service (DESIGN.md sections 1 and 14).

``app`` is the ABCI-shaped seam (check_tx, finalize_block, commit) between the pure core and
everything that orders, stores and serves transactions; ``mempool`` orders arrivals; ``blocklog``
is the durable source of truth; ``node`` produces blocks and writes snapshots; ``recovery`` and
``replay`` rebuild the state from snapshots and the log (``replay`` also verifies a whole log in
parallel); ``retention`` chooses the snapshots kept; ``readmodels`` and ``indexer`` derive
queryable tables from events, and ``indexer_process`` runs the indexer in its own process;
``runtime`` tunes the node's processes. The HTTP intake is ``bastion.api``.
"""
