"""The node: the state machine run as a service (DESIGN.md sections 1 and 14).

``app`` is the ABCI-shaped seam (check_tx, finalize_block, commit) between the pure core and
everything that orders, stores and serves transactions; ``mempool`` orders arrivals; ``blocklog``
is the durable source of truth; ``node`` produces blocks, snapshots and recovers; ``readmodels``
and ``indexer`` derive queryable tables from events; ``server`` is the HTTP intake.
"""
