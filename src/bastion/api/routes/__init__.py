"""The API's routes, one module per concern, each a factory ``*_routes(ctx) -> APIRouter`` over the
shared ``bastion.api.context.ApiContext``; ``bastion.app.create_app`` includes them in order.

``transactions`` (writes, the signing shape, the wallet JSON-RPC), ``chain`` (status, blocks),
``markets`` (markets, book), ``accounts`` (subaccounts, orders, insurance funds, the order
preview), ``governance``, ``history`` (the read models), ``stress`` (stress reports),
``websocket``.
"""
