"""The HTTP app of a node (FastAPI), served by ``bastion node`` and ``bastion demo``: the API's
routers (``bastion.api``) and the web pages (``bastion.web``) put together. It stands a layer above
both (README, "Layers"), so neither imports the other's composition.

Writes (signed, ``bastion.signing``)::

    POST /v1/tx                     an envelope -> 202 accepted (?wait_ms=N: 200 committed at height H)
    POST /v1/tx/batch               {"txs": [envelopes]} -> each accepted or refused, with its index
    GET  /v1/tx/{sender}/{nonce}    committed (height, index, result) | pending | unknown (?wait_ms=N)
    GET  /v1/signing                the EIP-712 domain and types, and the nonce window

Stress reports (off-chain, content-addressed, ``bastion.api.reports``; no signature: the hash names
the bytes)::

    POST /v1/stress/reports               a report.json -> 201 stored (200 already held) {report_hash, ...}
    GET  /v1/stress/reports/{hash}        its canonical bytes (404 report_not_found)
    GET  /v1/stress/reports/{hash}/html   its self-contained HTML page

Reads (public). Live state, under the node's lock, at the committed ``height`` they return:
``/v1/status``, ``/v1/markets[/{ticker}]``, ``/v1/markets/{ticker}/book``, ``/v1/subaccounts/{owner}
[/{number}[/orders]]``, ``/v1/insurance-funds``, ``/v1/agents/{address}`` (agent keys),
``/v1/governance/{proposals,parameters,concentration}``, ``/v1/governance/proposals/{id}/exposure`` (voter
exposure disclosure), ``/v1/blocks[/{height}]`` (the block log), ``/v1/telemetry[/{hash}]`` (misuse telemetry
over the block log's events, ``bastion.telemetry``).
History, from the read models, at the ``indexed_height`` they return:
``/v1/markets/{ticker}/{trades,candles,funding}``, ``/v1/orders``, ``/v1/fills``, ``/v1/funding-payments``,
``/v1/liquidations``. ``POST /v1/preview/order`` (no signature, ``bastion.api.preview``). WebSocket
``/v1/ws`` (``bastion.api.ws``).

Errors: every refusal is a 4xx ``{"code", "message", "field"}`` with the protocol's code: 400 for
malformed input and protocol rejections, 401 for signatures (``missing_signature``,
``invalid_signature``, ``signer_mismatch``), 404 for unknown markets, subaccounts, blocks, proposals
and routes, 413 for bodies over the limits, 429 ``rate_limited`` with ``Retry-After`` (token buckets,
``bastion.api.ratelimit``: transactions per client address, then per signed sender; report uploads
per client address). CORS is closed unless origins are
given (``ApiConfig.cors_origins``).

Pages: the web UI (``bastion.web``, ``docs/ui.md``) is mounted on the same app unless
``ApiConfig(web=False)``; ``create_app(..., demo=...)`` (``bastion demo``) gives it the demo's features
(``bastion.web.features.DemoFeatures``: "act as" a demo trader, the faucet).

Layout: ``create_app`` builds the shared ``bastion.api.context.ApiContext`` (configuration, intake,
limiters, read models, hub), adds the middleware and error handlers, and includes one router per
concern from ``bastion.api.routes`` (transactions, chain, markets, accounts, governance, history,
stress reports, WebSocket, agent keys, bot tools).

**Unsigned mode** (``ApiConfig(unsigned=True)``, ``bastion node --unsigned``): for trusted local bots
and tests only; the sender is taken as given, any nonce is accepted (still single-use), and the
node refuses to start it on anything but a loopback address (``bastion.cli``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion.api import models
from bastion.api.context import ApiConfig, ApiContext
from bastion.api.docs_page import mount_api_docs
from bastion.api.routes.accounts import account_routes, fund_routes, preview_routes
from bastion.api.routes.agents import agent_routes
from bastion.api.routes.bots import bot_routes
from bastion.api.routes.disputes import dispute_routes
from bastion.api.routes.gate import gate_routes
from bastion.api.routes.chain import block_routes, status_routes
from bastion.api.routes.governance import governance_routes
from bastion.api.routes.history import history_routes
from bastion.api.routes.markets import market_routes
from bastion.api.routes.staking import staking_routes
from bastion.api.routes.rewards import reward_routes
from bastion.api.routes.stress import stress_report_routes
from bastion.api.routes.telemetry import telemetry_routes
from bastion.api.routes.transactions import rpc_routes, transaction_routes
from bastion.api.routes.websocket import websocket_routes
from bastion.api.security import REFUSAL_STATUS, SecurityHeaders
from bastion.core.errors import ProtocolError
from bastion.node.node import Node, NodeStopped
from bastion.web import mount_web
from bastion.web.features import DemoFeatures

__all__ = ["ApiConfig", "create_app"]

# the routers in the order their routes are matched and listed in the OpenAPI document
ROUTERS = (transaction_routes, rpc_routes, status_routes, market_routes, account_routes, fund_routes,
           governance_routes, block_routes, history_routes, preview_routes, stress_report_routes, websocket_routes,
           agent_routes, bot_routes, telemetry_routes, staking_routes, dispute_routes, reward_routes, gate_routes)

STATUS_BY_CODE = {
    "missing_signature": 401, "invalid_signature": 401, "high_s_signature": 401, "signer_mismatch": 401,
    "unknown_market": 404, "subaccount_not_found": 404, "unknown_block": 404, "unknown_proposal": 404,
    "report_not_found": 404, "telemetry_not_found": 404, "unknown_dispute": 404,
    "read_models_disabled": 404, "not_found": 404, "method_not_allowed": 405,
    "too_large": 413, "rate_limited": 429, **REFUSAL_STATUS,
}


def error_response(error: ProtocolError) -> JSONResponse:
    status = STATUS_BY_CODE.get(error.code, 400)
    headers = {}
    if error.code == "rate_limited":
        headers["Retry-After"] = str(-(-int(error.fields.get("retry_after_ms", 1_000)) // 1_000))
    return JSONResponse({"code": error.code, "message": error.message, "field": error.fields.get("field")},
                        status_code=status, headers=headers)


def stopped_response(failure: NodeStopped) -> JSONResponse:
    return JSONResponse({"code": "node_stopped", "message": f"this node has stopped: {failure}", "field": None},
                        status_code=503)


class FailStopGuard:
    """ASGI middleware: once the node has stopped (``Node.failure``: a failed block write, an
    exception applying a block, a dead producer) every request is answered 503 ``node_stopped``
    with the reason, WebSockets are refused, and nothing of the state (which may be half a block
    ahead of the log) is served; ``bastion node`` exits at that moment anyway (fail-stop)."""

    def __init__(self, app: Any, node: Node) -> None:
        self.app, self.node = app, node

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        failure = self.node.failure
        if failure is None or scope["type"] == "lifespan":
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await stopped_response(failure)(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1011, "reason": "node stopped"})


def create_app(node: Node, config: ApiConfig | None = None, *, demo: DemoFeatures | None = None) -> FastAPI:
    """The API over ``node``; registers the WebSocket hub as a block listener of the node. ``demo``
    (``bastion demo`` only) gives the web pages the demo's features (``bastion.web.features``)."""
    config = config or ApiConfig()
    ctx = ApiContext(node, config)
    reader, hub, reports = ctx.reader, ctx.hub, ctx.reports
    node.block_listeners.append(hub.on_block)
    app = FastAPI(title="Bastion API", version="1", docs_url=None, redoc_url=None,  # /docs: bastion.api.docs_page
                  description=(__doc__ or "").split("\n\n", 1)[0] + " Signed writes (EIP-712), public reads, "
                  "order previews and WebSocket channels. Errors are 4xx {code, message, field}.")
    app.state.node, app.state.config, app.state.reader, app.state.hub = node, config, reader, hub
    app.state.reports = reports
    app.state.suggestions, app.state.telemetry = ctx.suggestions, ctx.telemetry
    app.state.dispute_checks = ctx.dispute_checks
    app.add_middleware(SecurityHeaders)  # CSP, frame-ancestors, nosniff on every answer (bastion.api.security)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["content-type"])

    app.add_middleware(FailStopGuard, node=node)

    # ----------------------------------------------------------------- errors
    @app.exception_handler(NodeStopped)
    async def on_node_stopped(_: Request, error: NodeStopped) -> JSONResponse:
        return stopped_response(error)

    @app.exception_handler(ProtocolError)
    async def on_protocol_error(_: Request, error: ProtocolError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        code = "invalid_json" if first.get("type") == "json_invalid" else "invalid_request"
        return error_response(ProtocolError(code, f"{where or 'request'}: {first.get('msg', 'invalid')}",
                                            field=where or None))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "invalid_request")
        return JSONResponse({"code": code, "message": str(error.detail), "field": None},
                            status_code=error.status_code if 400 <= error.status_code < 500 else 400)

    for routes in ROUTERS:
        app.include_router(routes(ctx))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (models.Envelope, models.Batch, models.StressReportDocument):
                definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(definition.pop("$defs", {}))
                components[model.__name__] = definition
            # validation errors are 400 {code, message, field} (on_validation_error), never FastAPI's 422:
            # every operation documents the 400 (a bad query or path parameter, a malformed body)
            error = {"description": "malformed request or refused by the protocol (its code)",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    responses.setdefault("400", error)
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    mount_api_docs(app)
    app.state.accept = ctx.accept
    if config.web:
        mount_web(app, demo)
    return app
