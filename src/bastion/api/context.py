"""What the API's routers share: its configuration, the node, the intake of transactions and the
read models (``ApiContext``), built once by ``create_app`` (``bastion.app``) and handed to each
router factory (``bastion.api.routes``).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from fastapi import Request

from bastion.api import models
from bastion.api.ratelimit import RateLimiter
from bastion.api.reports import DIRECTORY as REPORTS_DIRECTORY
from bastion.api.reports import ReportStore
from bastion.api.ws import Hub, HubLimits
from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.core.state import SUBACCOUNT_NUMBERS
from bastion.node.dispute_check import DisputeChecks
from bastion.node.node import Node, wall_clock_ms
from bastion.node.readmodels import ReadModels, open_read_models
from bastion.signing import NONCE_FUTURE_MS, NONCE_PAST_MS, verify_envelope
from bastion.telemetry import SuggestionLog, TelemetryStore

MAX_WAIT_MS = 30_000
MAX_ROWS = 1_000
VERIFY_CHUNK = 64  # envelopes per verifier task in a batch
INT64 = 2**63 - 1  # heights, nonces and times are stored as SQLite INTEGERs: larger ones are 400, not 500
NUMBER: dict[str, Any] = {"ge": SUBACCOUNT_NUMBERS.start, "le": SUBACCOUNT_NUMBERS.stop - 1}
# responses of a read that may be 404
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": models.Error}, 400: {"model": models.Error}}


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
    ws_max_connections: int = 1_000   # WebSocket bounds (bastion.api.ws.HubLimits)
    ws_max_per_ip: int = 50
    ws_max_subscriptions: int = 50
    ws_idle_s: float = 60.0


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


class ApiContext:
    """The node, the configuration and the state every router reads: the rate limiters, the report
    store, the read models' reader, the WebSocket hub and the verifier threads; and the intake of
    transactions (``accept``: verify, rate-limit, queue), which the web pages' demo endpoints and the
    demo's bots use too (``app.state.accept``)."""

    def __init__(self, node: Node, config: ApiConfig) -> None:
        self.node, self.config = node, config
        self.chain_id = node.state.chain_id
        self.limiter = RateLimiter(config.rate_per_s, config.burst, config.clock_ms)
        self.ip_limiter = RateLimiter(config.ip_rate_per_s, config.ip_burst, config.clock_ms)
        self.report_limiter = RateLimiter(config.report_rate_per_s, config.report_burst, config.clock_ms)
        self.reports = ReportStore(node.data_dir / REPORTS_DIRECTORY)
        # issue 20: isolation suggestions made by previews, telemetry snapshots served (bastion.telemetry)
        self.suggestions, self.telemetry = SuggestionLog(), TelemetryStore()
        self.dispute_checks = DisputeChecks(node.data_dir)   # replays of disputed blocks (API and web page)
        self.reader = ReadModelReader(config.read_models_url or node.read_models_url)
        self.hub = Hub(node, HubLimits(config.ws_max_connections, config.ws_max_per_ip, config.ws_max_subscriptions,
                                       config.ws_idle_s))
        self.verifiers = ThreadPoolExecutor(max_workers=config.verify_threads, thread_name_prefix="verify") \
            if config.verify_threads > 1 else None

    async def read_json(self, request: Request, limit: int) -> Any:
        """The JSON body of ``request``, read up to ``limit`` bytes (``too_large`` past it,
        ``invalid_json`` if it is not JSON)."""
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
    def authenticate(self, envelope: Any) -> tuple[dict[str, Any], str | None]:
        """The node's unsigned form of an envelope and its verified sender (signed mode); raises
        ``ProtocolError``. Reads nothing of the node: batches run it in the verifier threads."""
        config = self.config
        if not isinstance(envelope, dict):
            raise ProtocolError("invalid_envelope", "a transaction is a JSON object {msg, sender, nonce, signature}",
                                field="envelope")
        extra = sorted(set(envelope) - {"sender", "nonce", "msg", "signature"})
        if extra:
            raise ProtocolError("invalid_envelope", f"unknown envelope field {extra[0]!r}", field=extra[0])
        if config.unsigned:
            unsigned = {k: v for k, v in envelope.items() if k != "signature"}
            return unsigned, normalize_address(unsigned.get("sender"), field="sender") if "sender" in unsigned else None
        signed = verify_envelope(envelope, self.chain_id, config.clock_ms(), past_ms=config.nonce_past_ms,
                                 future_ms=config.nonce_future_ms)
        return signed.unsigned(), signed.sender

    def enqueue(self, unsigned: dict[str, Any], sender: str | None) -> dict[str, Any]:
        """Rate-limit and queue an authenticated envelope; raises ``ProtocolError``."""
        if sender is not None:
            self.limiter.take(sender)
        return self.node.submit(unsigned)

    def take_ip(self, request: Request, count: int = 1) -> None:
        """The per-address limit on transactions (``ip_rate_per_s``, bursts of ``ip_burst``), taken
        before any signature is recovered: many keys from one address share one bucket."""
        self.ip_limiter.take(f"address:{request.client.host if request.client else 'unknown'}", count)

    def accept(self, envelope: Any) -> dict[str, Any]:
        """Verify (signed mode), rate-limit and queue one envelope; raises ``ProtocolError``."""
        return self.enqueue(*self.authenticate(envelope))

    def authenticate_all(self, envelopes: list[Any]) -> list[tuple[dict[str, Any], str | None] | ProtocolError]:
        """``authenticate`` each envelope: its result, or the ``ProtocolError`` it raised."""
        out: list[tuple[dict[str, Any], str | None] | ProtocolError] = []
        for envelope in envelopes:
            try:
                out.append(self.authenticate(envelope))
            except ProtocolError as error:
                out.append(error)
        return out
