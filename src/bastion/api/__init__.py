"""The node's HTTP + WebSocket API (DESIGN.md section 14): ``app`` (FastAPI routes), ``signing``
(EIP-712 envelopes, shared with the SDK), ``views`` and ``risk`` (reads over the live state),
``preview`` (order previews and the isolation suggestion), ``ws`` (WebSocket channels),
``ratelimit`` (per-sender token buckets), ``reports`` (stress reports stored off-chain by their
hash) and ``models`` (the OpenAPI schema).

Importing this package imports nothing heavy: ``from bastion.api.app import create_app``.
"""
