"""The node's HTTP + WebSocket API (DESIGN.md section 14), put together with the web pages by
``bastion.app.create_app`` (middleware, error handlers, the routers and the pages): ``context``
(what the routers share: configuration, the intake, limiters, read models), ``routes`` (one router
per concern), ``views`` and ``risk`` (reads over the live state), ``preview`` (order previews and
the isolation suggestion), ``ws`` (WebSocket channels), ``ratelimit`` (per-sender token buckets),
``security`` (browser protections), ``reports`` (stress reports stored off-chain by their hash),
``server`` (uvicorn with bounded connections) and ``models`` (the OpenAPI schema). Envelopes are
signed and verified with ``bastion.signing``, shared with the SDK; amounts are formatted by
``bastion.presentation``.

Importing this package imports nothing heavy; the app: ``from bastion.app import create_app``.
"""
