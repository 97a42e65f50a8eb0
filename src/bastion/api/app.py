"""The HTTP + WebSocket API of a node (FastAPI), served by ``bastion node``.

Writes (signed, ``bastion.api.signing``)::

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
[/{number}[/orders]]``, ``/v1/insurance-funds``, ``/v1/governance/{proposals,parameters,
concentration}``, ``/v1/blocks[/{height}]`` (the block log). History, from the read models, at the
``indexed_height`` they return: ``/v1/markets/{ticker}/{trades,candles,funding}``, ``/v1/orders``,
``/v1/fills``, ``/v1/funding-payments``, ``/v1/liquidations``. ``POST /v1/preview/order`` (no
signature, ``bastion.api.preview``). WebSocket ``/v1/ws`` (``bastion.api.ws``).

Errors: every refusal is a 4xx ``{"code", "message", "field"}`` with the protocol's code: 400 for
malformed input and protocol rejections, 401 for signatures (``missing_signature``,
``invalid_signature``, ``signer_mismatch``), 404 for unknown markets, subaccounts, blocks, proposals
and routes, 413 for bodies over the limits, 429 ``rate_limited`` with ``Retry-After`` (token buckets,
``bastion.api.ratelimit``: transactions per client address, then per signed sender; report uploads
per client address). CORS is closed unless origins are
given (``ApiConfig.cors_origins``).

Pages: the web UI (``bastion.web``, ``docs/ui.md``) is mounted on the same app unless
``ApiConfig(web=False)``; ``ApiConfig(demo=True)`` (``bastion demo``) lets it sign with the demo keys.

**Unsigned mode** (``ApiConfig(unsigned=True)``, ``bastion node --unsigned``): for trusted local bots
and tests only; the sender is taken as given, any nonce is accepted (still single-use), and the
node refuses to start it on anything but a loopback address (``bastion.cli``).
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI, Path, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion.api import models
from bastion.api.preview import preview_order
from bastion.api.ratelimit import RateLimiter
from bastion.api.reports import DIRECTORY as REPORTS_DIRECTORY, ReportStore, describe_gate_reports, report_url
from bastion.api.security import REFUSAL_STATUS, SecurityHeaders
from bastion.api.signing import (
    ENVELOPE_TYPES, NONCE_FUTURE_MS, NONCE_PAST_MS, compute_chain_number, DOMAIN_NAME, SIGNING_VERSION,
    verify_envelope,
)
from bastion.api.views import (
    describe_book, describe_concentration, describe_council_state, describe_guardian_state, describe_insurance_funds,
    describe_market, describe_param_history, describe_proposals, describe_rollouts,
    describe_status, describe_subaccount, get_market_or_404, get_subaccount_or_404, page_open_orders,
)
from bastion.api.ws import Hub, HubLimits, serve_connection
from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.core.state import SUBACCOUNT_NUMBERS
from bastion.core.timefmt import format_iso_ms
from bastion.core.units import format_decimal, format_ppm, format_usdc
from bastion.node.node import Node, NodeStopped, wall_clock_ms
from bastion.node.readmodels import RESOLUTIONS, ReadModels, open_read_models
from bastion.scenario import format_event

MAX_WAIT_MS = 30_000
MAX_ROWS = 1_000
VERIFY_CHUNK = 64  # envelopes per verifier task in a batch
INT64 = 2**63 - 1  # heights, nonces and times are stored as SQLite INTEGERs: larger ones are 400, not 500
NUMBER: dict[str, Any] = {"ge": SUBACCOUNT_NUMBERS.start, "le": SUBACCOUNT_NUMBERS.stop - 1}

STATUS_BY_CODE = {
    "missing_signature": 401, "invalid_signature": 401, "high_s_signature": 401, "signer_mismatch": 401,
    "unknown_market": 404, "subaccount_not_found": 404, "unknown_block": 404, "unknown_proposal": 404,
    "report_not_found": 404,
    "read_models_disabled": 404, "not_found": 404, "method_not_allowed": 405,
    "too_large": 413, "rate_limited": 429, **REFUSAL_STATUS,
}


@dataclass
class ApiConfig:
    """How the API treats writes. Times in ms from ``clock_ms`` (the wall clock by default; tests
    inject one). ``read_models_url`` defaults to the node's own."""

    unsigned: bool = False
    clock_ms: Callable[[], int] = wall_clock_ms
    nonce_past_ms: int = NONCE_PAST_MS
    nonce_future_ms: int = NONCE_FUTURE_MS
    rate_per_s: int = 1_000
    burst: int = 2_000
    ip_rate_per_s: int = 2_000     # transactions per second per client address, before signatures are checked
    ip_burst: int = 5_000
    max_body_bytes: int = 64 * 1024
    max_batch_bytes: int = 4 * 1024 * 1024
    max_batch_txs: int = 2_000
    cors_origins: tuple[str, ...] = ()
    read_models_url: str | None = None
    verify_threads: int = 2  # threads recovering a batch's signatures (1: in the event loop)
    web: bool = True      # the web UI's pages (bastion.web) on the same app
    max_report_bytes: int = 8 * 1024 * 1024   # one uploaded stress report (the default gate set's: ~0.4 MB)
    report_rate_per_s: int = 1                # stress report uploads per client address (token bucket)
    report_burst: int = 20
    demo: bool = False    # demo mode: the pages may sign with the demo keys (bastion.demo.keys)
    ws_max_connections: int = 1_000   # WebSocket bounds (bastion.api.ws.HubLimits)
    ws_max_per_ip: int = 50
    ws_max_subscriptions: int = 50
    ws_idle_s: float = 60.0


RPC_MAX_BYTES = 65_536  # a wallet's calls are tiny
# a served stress report page runs its inline script and styles and reaches nothing on the network
REPORT_PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                      "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
                      "frame-ancestors 'none'")


def rpc_error(call_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}


def answer_rpc(call: Any, chain_id: str, height: int) -> dict[str, Any]:
    """One JSON-RPC 2.0 call of ``POST /rpc``: ``eth_chainId`` (the EIP-712 chain number, hex),
    ``net_version`` (the same, decimal) and ``eth_blockNumber`` (the committed height, hex). A
    wallet calls these to add a network (MetaMask's ``wallet_addEthereumChain`` checks that the RPC
    answers the chain id it was given); every other method is ``-32601``: Bastion is not an EVM
    chain, and its transactions go to ``POST /v1/tx``."""
    if not isinstance(call, dict) or call.get("jsonrpc") != "2.0" or not isinstance(call.get("method"), str):
        return rpc_error(call.get("id") if isinstance(call, dict) else None, -32600, "invalid request")
    number = compute_chain_number(chain_id)
    answers = {"eth_chainId": hex(number), "net_version": str(number), "eth_blockNumber": hex(height)}
    if call["method"] not in answers:
        return rpc_error(call.get("id"), -32601,
                         f"method not found: this node answers only {', '.join(answers)} "
                         "(transactions go to POST /v1/tx)")
    return {"jsonrpc": "2.0", "id": call.get("id"), "result": answers[call["method"]]}


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


class ReadModelReader:
    """The API's own connection to the read models (the indexer writes them in its process);
    one query at a time."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._models: ReadModels | None = None
        self._lock = threading.Lock()

    def query(self, method: str, **arguments: Any) -> tuple[int, list[dict]]:
        if self.url is None:
            raise ProtocolError("read_models_disabled", "this node keeps no read models (--read-models none)")
        with self._lock:
            if self._models is None:
                self._models = open_read_models(self.url)
            return self._models.indexed_height(), getattr(self._models, method)(**arguments)

    def close(self) -> None:
        with self._lock:
            if self._models is not None:
                self._models.close()
                self._models = None


# ------------------------------------------------------------------------------ read-model formatting
PRICE_COLUMNS = {"price", "trigger_price", "open", "high", "low", "close", "oracle_price"}
SIZE_COLUMNS = {"size", "filled", "remaining", "volume_lots", "change"}
USDC_COLUMNS = {"quote", "taker_fee", "maker_fee", "to_insurance", "amount", "volume_quote"}


def market_grid(node: Node) -> Any:
    """What formatting needs of the state, copied in a moment under the node's lock: the markets
    (only their decimal grids are read, and a market's grid never changes)."""
    with node.lock:
        return SimpleNamespace(markets=dict(node.state.markets))


def height_seq(cursor: str | None) -> tuple[int, int] | None:
    """The (height, seq) of a history cursor ``"H.S"`` (a ``next_cursor``), or None."""
    if cursor is None:
        return None
    height, _, seq = cursor.partition(".")
    if not (height.isascii() and seq.isascii() and height.isdigit() and seq.isdigit()
            and len(height) <= 18 and len(seq) <= 18):
        raise ProtocolError("invalid_cursor", "cursor must be the next_cursor of a previous page", field="cursor")
    return int(height), int(seq)


def format_row(node: Any, row: dict[str, Any]) -> dict[str, Any]:
    """A read-model row with its amounts as decimal strings on its market's grid (``node``: a node,
    or ``market_grid``'s copy)."""
    state = node.state if isinstance(node, Node) else node
    market = state.markets.get(row.get("market", ""))
    out = {}
    for key, value in row.items():
        if key == "detail" and isinstance(value, dict):
            value = format_event(value, state)
        elif isinstance(value, int) and not isinstance(value, bool):
            if key in USDC_COLUMNS:
                value = format_usdc(value)
            elif market is not None and key in PRICE_COLUMNS:
                value = format_decimal(value, market.price_decimals)
            elif market is not None and key in SIZE_COLUMNS:
                value = format_decimal(value, market.size_decimals)
            elif key == "rate_8h_ppm":
                value = format_ppm(value)
            elif key in ("index_delta", "funding_index"):
                value = str(value)
        out[key] = value
    return out


def create_app(node: Node, config: ApiConfig | None = None) -> FastAPI:
    """The API over ``node``; registers the WebSocket hub as a block listener of the node."""
    config = config or ApiConfig()
    chain_id = node.state.chain_id
    limiter = RateLimiter(config.rate_per_s, config.burst, config.clock_ms)
    ip_limiter = RateLimiter(config.ip_rate_per_s, config.ip_burst, config.clock_ms)
    report_limiter = RateLimiter(config.report_rate_per_s, config.report_burst, config.clock_ms)
    reports = ReportStore(node.data_dir / REPORTS_DIRECTORY)
    reader = ReadModelReader(config.read_models_url or node.read_models_url)
    hub = Hub(node, HubLimits(config.ws_max_connections, config.ws_max_per_ip, config.ws_max_subscriptions,
                              config.ws_idle_s))
    node.block_listeners.append(hub.on_block)
    app = FastAPI(title="Bastion API", version="1",
                  description=(__doc__ or "").split("\n\n", 1)[0] + " Signed writes (EIP-712), public reads, "
                  "order previews and WebSocket channels. Errors are 4xx {code, message, field}.")
    app.state.node, app.state.config, app.state.reader, app.state.hub = node, config, reader, hub
    app.state.reports = reports
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

    async def read_json(request: Request, limit: int) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ProtocolError("too_large", f"the body is over {limit} bytes", field="body")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ProtocolError("too_large", f"the body is over {limit} bytes", field="body")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise ProtocolError("invalid_json", "the body is not JSON (or is nested too deeply)",
                                field="body") from None

    # ----------------------------------------------------------------- writes
    def authenticate(envelope: Any) -> tuple[dict[str, Any], str | None]:
        """The node's unsigned form of an envelope and its verified sender (signed mode); raises
        ``ProtocolError``. Reads nothing of the node: batches run it in the verifier threads."""
        if not isinstance(envelope, dict):
            raise ProtocolError("invalid_envelope", "a transaction is a JSON object {msg, sender, nonce, signature}",
                                field="envelope")
        extra = sorted(set(envelope) - {"sender", "nonce", "msg", "signature"})
        if extra:
            raise ProtocolError("invalid_envelope", f"unknown envelope field {extra[0]!r}", field=extra[0])
        if config.unsigned:
            unsigned = {k: v for k, v in envelope.items() if k != "signature"}
            return unsigned, normalize_address(unsigned.get("sender"), field="sender") if "sender" in unsigned else None
        signed = verify_envelope(envelope, chain_id, config.clock_ms(), past_ms=config.nonce_past_ms,
                                 future_ms=config.nonce_future_ms)
        return signed.unsigned(), signed.sender

    def enqueue(unsigned: dict[str, Any], sender: str | None) -> dict[str, Any]:
        """Rate-limit and queue an authenticated envelope; raises ``ProtocolError``."""
        if sender is not None:
            limiter.take(sender)
        return node.submit(unsigned)

    def take_ip(request: Request, count: int = 1) -> None:
        """The per-address limit on transactions (``ip_rate_per_s``, bursts of ``ip_burst``), taken
        before any signature is recovered: many keys from one address share one bucket."""
        ip_limiter.take(f"address:{request.client.host if request.client else 'unknown'}", count)

    def accept(envelope: Any) -> dict[str, Any]:
        """Verify (signed mode), rate-limit and queue one envelope; raises ``ProtocolError``."""
        return enqueue(*authenticate(envelope))

    def authenticate_all(envelopes: list[Any]) -> list[tuple[dict[str, Any], str | None] | ProtocolError]:
        out: list[tuple[dict[str, Any], str | None] | ProtocolError] = []
        for envelope in envelopes:
            try:
                out.append(authenticate(envelope))
            except ProtocolError as error:
                out.append(error)
        return out

    verifiers = ThreadPoolExecutor(max_workers=config.verify_threads, thread_name_prefix="verify") \
        if config.verify_threads > 1 else None

    write_body = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Envelope"}}}}}
    refusals: dict[int | str, dict[str, Any]] = {
        400: {"model": models.Error, "description": "malformed or refused by check_tx"},
        401: {"model": models.Error, "description": "missing or invalid signature"},
        413: {"model": models.Error, "description": "body too large"},
        429: {"model": models.Error, "description": "rate limited"}}

    @app.post("/v1/tx", status_code=202, response_model=models.TxAccepted | models.TxStatus, responses=refusals,
              openapi_extra=write_body, tags=["transactions"])
    async def submit(request: Request, wait_ms: int = Query(0, ge=0, le=MAX_WAIT_MS)) -> Any:
        """Submit one signed envelope. ``accepted`` promises nothing; with ``wait_ms`` the answer is
        the commit status (``committed`` at a height, or still ``pending`` after the wait)."""
        take_ip(request)
        accepted = accept(await read_json(request, config.max_body_bytes))
        if wait_ms:
            status = await run_in_threadpool(node.wait_committed, accepted["sender"], accepted["nonce"],
                                             wait_ms / 1000)
            return JSONResponse(status, status_code=200)
        return accepted

    @app.post("/v1/tx/batch", response_model=models.BatchResult, tags=["transactions"],
              responses={400: {"model": models.Error}, 413: {"model": models.Error}},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": {"$ref": "#/components/schemas/Batch"}}}}})
    async def submit_batch(request: Request) -> Any:
        """Submit several envelopes; each is accepted or refused on its own, in order, with its index."""
        body = await read_json(request, config.max_batch_bytes)
        txs = body.get("txs") if isinstance(body, dict) else None
        if not isinstance(txs, list) or (isinstance(body, dict) and set(body) != {"txs"}):
            raise ProtocolError("invalid_batch", "a batch is {\"txs\": [envelopes]}", field="txs")
        if len(txs) > config.max_batch_txs:
            raise ProtocolError("too_large", f"a batch holds at most {config.max_batch_txs} transactions", field="txs")
        take_ip(request, len(txs))
        # signature recovery (libsecp256k1 releases the GIL) in the verifier threads, in chunks; then
        # each envelope queued in batch order, so arrival order is the batch's
        if verifiers is not None and len(txs) >= 2 * VERIFY_CHUNK:
            chunks = [txs[i:i + VERIFY_CHUNK] for i in range(0, len(txs), VERIFY_CHUNK)]
            loop = asyncio.get_running_loop()
            parts = await asyncio.gather(*(loop.run_in_executor(verifiers, authenticate_all, c) for c in chunks))
            authenticated = [item for part in parts for item in part]
        else:
            authenticated = authenticate_all(txs)
        results = []
        for index, item in enumerate(authenticated):
            try:
                if isinstance(item, ProtocolError):
                    raise item
                results.append({"index": index, **enqueue(*item)})
            except ProtocolError as error:
                results.append({"index": index, "status": "refused", "code": error.code, "message": error.message,
                                "field": error.fields.get("field")})
        accepted = sum(r["status"] == "accepted" for r in results)
        return {"accepted": accepted, "refused": len(results) - accepted, "results": results}

    @app.get("/v1/tx/{sender}/{nonce}", response_model=models.TxStatus, response_model_exclude_none=True,
             tags=["transactions"],
             responses={400: {"model": models.Error}})
    def tx_status(sender: str, nonce: int = Path(ge=0, le=INT64),
                  wait_ms: int = Query(0, ge=0, le=MAX_WAIT_MS)) -> Any:
        """``committed`` (height, index, result), ``pending`` or ``unknown``; ``wait_ms`` waits for the commit."""
        sender = normalize_address(sender, field="sender")
        if wait_ms > 0:
            return node.wait_committed(sender, nonce, wait_ms / 1000)
        return node.tx_status(sender, nonce)

    @app.get("/v1/signing", response_model=models.SigningInfo, tags=["transactions"])
    def signing() -> Any:
        """The EIP-712 domain and types every envelope is signed with (``bastion.api.signing``)."""
        return {"domain": {"name": DOMAIN_NAME, "version": SIGNING_VERSION, "chainId": compute_chain_number(chain_id)},
                "types": ENVELOPE_TYPES, "primary_type": "Envelope",
                "nonce_unit": "microseconds since the Unix epoch" if not config.unsigned else "any (unsigned mode)",
                "nonce_window_past_ms": config.nonce_past_ms, "nonce_window_future_ms": config.nonce_future_ms}

    # ----------------------------------------------------------------- wallet JSON-RPC
    rpc_headers = {"access-control-allow-origin": "*", "access-control-allow-methods": "POST",
                   "access-control-allow-headers": "content-type"}

    @app.options("/rpc", include_in_schema=False)
    def rpc_preflight() -> Any:
        return JSONResponse(None, headers=rpc_headers)

    @app.post("/rpc", include_in_schema=False)
    async def rpc(request: Request) -> Any:
        """Just enough Ethereum JSON-RPC for a wallet to add the Bastion network (``docs/api.md``)."""
        try:
            body = await read_json(request, RPC_MAX_BYTES)
        except ProtocolError as error:
            if error.code != "invalid_json":
                raise
            return JSONResponse(rpc_error(None, -32700, "parse error"), headers=rpc_headers)
        with node.lock:
            height = node.state.height
        if isinstance(body, list):
            answers = [answer_rpc(call, chain_id, height) for call in body] or rpc_error(None, -32600, "empty batch")
            return JSONResponse(answers, headers=rpc_headers)
        return JSONResponse(answer_rpc(body, chain_id, height), headers=rpc_headers)

    # ----------------------------------------------------------------- reads: live state
    not_found: dict[int | str, dict[str, Any]] = {404: {"model": models.Error}, 400: {"model": models.Error}}

    @app.get("/v1/status", response_model=models.Status, tags=["chain"])
    def status() -> Any:
        with node.lock:
            return {**describe_status(node.state), "mempool": len(node.mempool), "signed": not config.unsigned,
                    "indexed_height": None if node.indexer is None else node.indexer.indexed_height,
                    "index_error": None if node.indexer is None else node.indexer.error,
                    "recovery": {"snapshot_height": node.recovery.snapshot_height,
                                 "replayed_blocks": node.recovery.replayed_blocks,
                                 "replayed_txs": node.recovery.replayed_txs,
                                 "seconds": round(node.recovery.seconds, 3),
                                 "skipped_snapshots": node.recovery.skipped_snapshots}}

    @app.get("/v1/markets", response_model=models.Markets, tags=["markets"])
    def markets() -> Any:
        with node.lock:
            state = node.state
            return {"height": state.height, "markets": [describe_market(state, m) for m in state.markets.values()]}

    @app.get("/v1/markets/{ticker}", response_model=models.Market, responses=not_found, tags=["markets"])
    def market(ticker: str) -> Any:
        with node.lock:
            return {"height": node.state.height, **describe_market(node.state, get_market_or_404(node.state, ticker))}

    @app.get("/v1/markets/{ticker}/book", response_model=models.Book, responses=not_found, tags=["markets"])
    def book(ticker: str, depth: int = Query(20, ge=1, le=500)) -> Any:
        """Aggregated price levels, best first."""
        with node.lock:
            return describe_book(node.state, get_market_or_404(node.state, ticker), depth)

    @app.get("/v1/subaccounts/{owner}", response_model=models.Subaccounts, responses=not_found, tags=["accounts"])
    def subaccounts(owner: str) -> Any:
        owner = normalize_address(owner, field="owner")
        with node.lock:
            state = node.state
            return {"height": state.height,
                    "subaccounts": [describe_subaccount(state, state.subaccounts[(owner, n)])
                                    for n in SUBACCOUNT_NUMBERS if (owner, n) in state.subaccounts]}

    @app.get("/v1/subaccounts/{owner}/{number}", response_model=models.Subaccount, responses=not_found,
             tags=["accounts"])
    def subaccount(owner: str, number: int = Path(**NUMBER)) -> Any:
        """Balance, equity, IMR, MMR, free collateral; positions with entry price, unrealised PnL and
        liquidation price (``bastion.api.risk``)."""
        owner = normalize_address(owner, field="owner")
        with node.lock:
            return describe_subaccount(node.state, get_subaccount_or_404(node.state, owner, number))

    @app.get("/v1/subaccounts/{owner}/{number}/orders", response_model=models.OpenOrders, responses=not_found,
             tags=["accounts"])
    def open_orders(owner: str, number: int = Path(**NUMBER), limit: int = Query(MAX_ROWS, ge=1, le=MAX_ROWS),
                    cursor: str | None = Query(None, max_length=32)) -> Any:
        """Open orders from the live state: resting ones by order id, then untriggered conditional
        ones, ``limit`` a page; ``next_cursor`` (null on the last page) is the ``cursor`` of the next
        page. The node's lock is held only to copy the ids and describe this page."""
        owner = normalize_address(owner, field="owner")
        with node.lock:
            sub = get_subaccount_or_404(node.state, owner, number)
            orders, next_cursor = page_open_orders(node.state, sub, limit, cursor)
            return {"height": node.state.height, "orders": orders, "next_cursor": next_cursor}

    @app.get("/v1/insurance-funds", response_model=models.InsuranceFunds, tags=["risk"])
    def insurance_funds() -> Any:
        with node.lock:
            return describe_insurance_funds(node.state)

    @app.get("/v1/governance/proposals", response_model=models.Proposals, tags=["governance"])
    def proposals() -> Any:
        with node.lock:
            height, described = node.state.height, describe_proposals(node.state)
        for entry in described:
            describe_gate_reports(entry["stress_gate"], reports)
        return {"height": height, "proposals": described}

    @app.get("/v1/governance/proposals/{proposal_id}", response_model=models.ProposalAt, responses=not_found,
             tags=["governance"])
    def proposal(proposal_id: str) -> Any:
        """One proposal by its id or number: actions, risk class, tally, timeline, stress gate
        (attestations, passes against the threshold, open or not, and for each attested report hash
        whether this node holds the report, with links, its verdict and headline figures) and
        participation."""
        with node.lock:
            height, described = node.state.height, describe_proposals(node.state)
        for entry in described:
            if entry["proposal_id"] == proposal_id or str(entry["number"]) == proposal_id:
                describe_gate_reports(entry["stress_gate"], reports)
                return {"height": height, **entry}
        raise ProtocolError("unknown_proposal", f"no proposal {proposal_id!r}", field="proposal_id")

    @app.get("/v1/governance/parameters", response_model=models.ParameterHistory, tags=["governance"])
    def parameters() -> Any:
        """Every governed parameter change, oldest first (``state.param_history``)."""
        with node.lock:
            return {"height": node.state.height, "changes": describe_param_history(node.state)}

    @app.get("/v1/governance/concentration", response_model=models.Concentration, tags=["governance"])
    def concentration() -> Any:
        with node.lock:
            return describe_concentration(node.state)

    @app.get("/v1/governance/guardian", response_model=models.Guardian, tags=["governance"])
    def guardian() -> Any:
        """The guardian: address, expiry, pauses in force, pause keys spent this term."""
        with node.lock:
            return describe_guardian_state(node.state)

    @app.get("/v1/governance/rollouts", response_model=models.Rollouts, tags=["governance"])
    def rollouts() -> Any:
        """Every staged rollout (``state.rollouts``), in creation order."""
        with node.lock:
            return describe_rollouts(node.state)

    @app.get("/v1/governance/council", response_model=models.CouncilState, tags=["governance"])
    def council_state() -> Any:
        """The council: members, threshold, steward bounds, attestations, cooldowns, pending approvals."""
        with node.lock:
            return describe_council_state(node.state)

    # ----------------------------------------------------------------- reads: the block log
    def block_header(block: Any) -> dict[str, Any]:
        return {"height": block.height, "time": format_iso_ms(block.time_ms), "prev_hash": block.prev_hash,
                "tx_root": block.tx_root, "results_root": block.results_root, "events_root": block.events_root,
                "state_hash": block.state_hash, "block_hash": block.block_hash, "tx_count": block.tx_count}

    @app.get("/v1/blocks", response_model=models.Blocks, tags=["chain"])
    def blocks(from_height: int | None = Query(None, ge=1, le=INT64), limit: int = Query(20, ge=1, le=MAX_ROWS)) -> Any:
        """Block headers with their state hashes, newest first from ``from_height`` (default: the head)."""
        with node.lock:
            top = node.state.height if from_height is None else min(from_height, node.state.height)
            found = [node.log.block(h) for h in range(top, max(top - limit, 0), -1)]
            return {"blocks": [block_header(b) for b in found if b is not None]}

    @app.get("/v1/blocks/{height}", response_model=models.Block, responses=not_found, tags=["chain"])
    def block(height: int = Path(ge=-INT64, le=INT64)) -> Any:
        """One block: header, transactions (envelopes without signatures), results and events."""
        with node.lock:
            found = node.log.block(height) if height >= 1 else None
            if found is None:
                raise ProtocolError("unknown_block", f"no block at height {height}", field="height")
            return {**block_header(found),
                    "txs": [{"sender": t.sender, "nonce": t.nonce, "arrival": t.arrival, "msg": t.msg}
                            for t in found.txs],
                    "results": found.results, "events": [format_event(e, node.state) for e in found.events]}

    # ----------------------------------------------------------------- reads: read models (history)
    def rows(method: str, limit: int | None = None, **arguments: Any) -> dict[str, Any]:
        """A page of read-model rows, formatted outside the node's lock (``market_grid``); with
        ``limit``, ``next_cursor`` names the last row's place ((height, seq), or the order id)."""
        if limit is not None:
            arguments["limit"] = limit
        height, found = reader.query(method, **arguments)
        grid = market_grid(node)
        next_cursor = None
        if limit is not None and len(found) == limit:
            last = found[-1]
            next_cursor = str(last["order_id"]) if method == "orders" else f"{last['height']}.{last['seq']}"
        return {"indexed_height": height, "rows": [format_row(grid, row) for row in found],
                "next_cursor": next_cursor}

    def known_market(ticker: str | None) -> None:
        if ticker is not None:
            with node.lock:
                get_market_or_404(node.state, ticker)

    def optional_owner(owner: str | None) -> str | None:
        return None if owner is None else normalize_address(owner, field="owner")

    cursor_query = Query(None, max_length=48, description="the next_cursor of the previous page")

    @app.get("/v1/markets/{ticker}/trades", response_model=models.Rows, responses=not_found, tags=["history"])
    def trades(ticker: str, since_height: int = Query(0, ge=0, le=INT64),
               limit: int = Query(100, ge=1, le=MAX_ROWS), cursor: str | None = cursor_query) -> Any:
        """Fills of the market, oldest first from ``since_height``, ``limit`` a page."""
        known_market(ticker)
        return rows("fills", market=ticker, since_height=since_height, limit=limit, after=height_seq(cursor))

    @app.get("/v1/markets/{ticker}/candles", response_model=models.Rows, responses=not_found, tags=["history"])
    def candles(ticker: str, resolution: str = Query("1m", pattern="^(" + "|".join(RESOLUTIONS) + ")$"),
                start_ms: int | None = Query(None, ge=-INT64, le=INT64),
                end_ms: int | None = Query(None, ge=-INT64, le=INT64)) -> Any:
        """OHLC (prices), volume (size and quote) and trade count per bucket of block time."""
        known_market(ticker)
        return rows("candles", market=ticker, resolution=resolution, start_ms=start_ms, end_ms=end_ms)

    @app.get("/v1/markets/{ticker}/funding", response_model=models.Rows, responses=not_found, tags=["history"])
    def funding(ticker: str, limit: int = Query(MAX_ROWS, ge=1, le=MAX_ROWS),
                cursor: str | None = cursor_query) -> Any:
        """Hourly funding ticks: 8-hour rate, samples, index change; oldest first, ``limit`` a page."""
        known_market(ticker)
        return rows("funding_ticks", market=ticker, limit=limit, after=height_seq(cursor))

    @app.get("/v1/orders", response_model=models.Rows, responses=not_found, tags=["history"])
    def orders(owner: str | None = None, number: int | None = Query(None, **NUMBER), market: str | None = None,
               status: str | None = None, limit: int = Query(100, ge=1, le=MAX_ROWS),
               cursor: str | None = cursor_query) -> Any:
        """Orders and their lifecycle (newest first), ``limit`` a page."""
        known_market(market)
        before = None
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 19):
                raise ProtocolError("invalid_cursor", "cursor must be the next_cursor of a previous page",
                                    field="cursor")
            before = int(cursor)
        return rows("orders", owner=optional_owner(owner), number=number, market=market, status=status, limit=limit,
                    before=before)

    @app.get("/v1/fills", response_model=models.Rows, responses=not_found, tags=["history"])
    def fills(owner: str | None = None, market: str | None = None, since_height: int = Query(0, ge=0, le=INT64),
              limit: int = Query(100, ge=1, le=MAX_ROWS), cursor: str | None = cursor_query) -> Any:
        """Fills, oldest first; ``owner`` as maker or taker; ``limit`` a page."""
        known_market(market)
        return rows("fills", owner=optional_owner(owner), market=market, since_height=since_height, limit=limit,
                    after=height_seq(cursor))

    @app.get("/v1/funding-payments", response_model=models.Rows, responses=not_found, tags=["history"])
    def funding_payments(owner: str | None = None, number: int | None = Query(None, **NUMBER),
                         market: str | None = None, limit: int = Query(MAX_ROWS, ge=1, le=MAX_ROWS),
                         cursor: str | None = cursor_query) -> Any:
        """Funding payments, oldest first, ``limit`` a page."""
        known_market(market)
        return rows("funding_payments", owner=optional_owner(owner), number=number, market=market, limit=limit,
                    after=height_seq(cursor))

    @app.get("/v1/liquidations", response_model=models.Rows, responses=not_found, tags=["history"])
    def liquidations(owner: str | None = None, market: str | None = None,
                     limit: int = Query(MAX_ROWS, ge=1, le=MAX_ROWS), cursor: str | None = cursor_query) -> Any:
        """Liquidations, deleveraging (ADL), bad debt and incomplete liquidations with their inputs;
        oldest first, ``limit`` a page."""
        known_market(market)
        return rows("liquidations", owner=optional_owner(owner), market=market, limit=limit,
                    after=height_seq(cursor))

    # ----------------------------------------------------------------- preview
    @app.post("/v1/preview/order", response_model=models.Preview, responses=not_found, tags=["accounts"])
    def preview(request: models.PreviewRequest) -> Any:
        """An order's effect on margin, new liquidation prices and the isolation suggestion
        (``bastion.api.preview``); no signature."""
        owner = normalize_address(request.owner, field="owner")
        with node.lock:
            return preview_order(node.state, owner=owner, subaccount=request.subaccount, market=request.market,
                                 side=request.side, size=request.size, price=request.price,
                                 reduce_only=request.reduce_only, isolated_amount=request.isolated_amount)

    # ----------------------------------------------------------------- stress reports (off-chain)
    report_hash_path = Path(pattern="^[0-9a-f]{64}$", description="SHA-256 hex of the report's canonical bytes",
                            examples=[models.REPORT_EXAMPLE])

    @app.post("/v1/stress/reports", status_code=201, response_model=models.ReportStored, tags=["stress"],
              responses={200: {"model": models.ReportStored, "description": "already held (nothing written)"},
                         400: {"model": models.Error, "description": "not JSON, or not a valid report "
                                                                     "(invalid_report, with the field)"},
                         413: {"model": models.Error, "description": "body too large"},
                         429: {"model": models.Error, "description": "rate limited (per client address)"}},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": {"$ref": "#/components/schemas/StressReportDocument"}}}}})
    async def upload_report(request: Request) -> Any:
        """Store a stress report (the ``report.json`` of ``bastion stress``) by its hash: the node
        checks it (``stress.report.check_report_document``: shape, summary and verdict rebuilt from
        the scenarios), recomputes its canonical bytes and ``report_hash`` and keeps them off-chain
        (``bastion.api.reports``). No signature: the hash names the bytes, so what is stored under a
        hash is the report with that hash, whoever sent it. 201 stored now, 200 already held."""
        report_limiter.take(f"address:{request.client.host if request.client else 'unknown'}")
        document = await read_json(request, config.max_report_bytes)
        report_hash, created, stored = await run_in_threadpool(reports.put, document)
        return JSONResponse({"report_hash": report_hash, "stored": True, "created": created,
                             "verdict": "pass" if stored["verdict"]["passed"] else "fail",
                             "url": report_url(report_hash), "html_url": f"{report_url(report_hash)}/html"},
                            status_code=201 if created else 200)

    @app.get("/v1/stress/reports/{report_hash}", response_model=models.StressReportDocument,
             responses=not_found, tags=["stress"])
    def stress_report(report_hash: str = report_hash_path) -> Any:
        """A held report's canonical bytes (``sha256`` of the body is ``report_hash``);
        404 ``report_not_found`` when this node does not hold it."""
        data = reports.read_bytes(report_hash)
        if data is None:
            reports.get(report_hash)  # raises report_not_found
        return Response(data, media_type="application/json")

    @app.get("/v1/stress/reports/{report_hash}/html", response_class=HTMLResponse, tags=["stress"],
             responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                              "description": "the self-contained HTML report"},
                        **{status: {"description": description, "content": {"application/json": {"schema": {
                            "$ref": "#/components/schemas/Error"}}}}
                           for status, description in ((404, "not held here (report_not_found)"),
                                                       (400, "not a report hash"))}})
    async def stress_report_html(report_hash: str = report_hash_path) -> Any:
        """The report's self-contained HTML page (plotly inline, nothing loaded from anywhere),
        drawn from the stored document: the plots that need the stressed state (price paths, funds
        over time) are left out and the page says how to draw them (``bastion stress --out``).
        Served with a Content-Security-Policy that allows no network access."""
        page = await run_in_threadpool(reports.render_html, report_hash)
        return HTMLResponse(page, headers={"Content-Security-Policy": REPORT_PAGE_POLICY})

    # ----------------------------------------------------------------- WebSocket
    @app.websocket("/v1/ws")
    async def websocket(socket: WebSocket) -> None:
        await serve_connection(hub, socket)

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
    app.state.accept = accept
    if config.web:
        from bastion.web import mount_web
        mount_web(app)
    return app
