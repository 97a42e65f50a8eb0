"""WebSocket channels, pushed on each committed block.

One endpoint, ``/v1/ws``. A client sends JSON commands::

    {"op": "subscribe", "channel": "blocks"}
    {"op": "subscribe", "channel": "book", "market": "BTC-USD", "depth": 20}
    {"op": "subscribe", "channel": "trades", "market": "BTC-USD"}
    {"op": "subscribe", "channel": "account", "owner": "0x...", "number": 0}
    {"op": "subscribe", "channel": "governance"}
    {"op": "unsubscribe", ...same keys...}

and receives ``{"type": "subscribed", "channel", ...}`` (with the current snapshot for ``book`` and
``account``), then after every committed block that changes what it watches:

    blocks      {"channel": "blocks", "height", "time", "state_hash", "block_hash", "tx_count"} (every block)
    book        {"channel": "book", "market", "height", "bids", "asks"} when the aggregated levels change
    trades      {"channel": "trades", "market", "height", "trades": [fill events]} when there were fills
    account     {"channel": "account", "height", ...the subaccount read...} when it changes
    governance  {"channel": "governance", "height", "events": [...]} for proposal, vote, parameter, council,
                guardian, rollout and executed-action events (``GOVERNANCE_EVENT_TYPES``)

Errors are ``{"type": "error", "code", "message"}`` and leave the connection open.

Bounds (``HubLimits``, from ``ApiConfig``): at most ``max_connections`` connections (more are
closed at once with code 1013, reason ``server busy``) and ``max_per_ip`` per client address (code
1008); at most ``max_subscriptions`` per connection (a further ``subscribe`` is refused with the
error ``too_many_subscriptions``) and ``COMMANDS_PER_S`` commands a second after a burst of
``COMMAND_BURST`` (then ``rate_limited``); a subscription's snapshot is read in a worker thread,
so the event loop never waits for the node's lock; a connection without a subscription is closed after ``idle_s``
(1008, ``idle``). Slow readers: each connection's outgoing queue holds at most ``MAX_QUEUE``
messages and ``MAX_QUEUE_BYTES`` bytes; a connection that falls that far behind is dropped (1013, ``slow consumer``)
and its queue freed, never buffered without bound (and the server aborts a socket whose write buffer stays full,
``bastion.api.server``).

Once per block, not per subscriber: ``Hub.on_block`` takes what it needs under the node's lock
in one quick pass (the top levels of each watched book, the reads of the watched subaccounts, the
markets' decimal grids), then outside the lock formats each channel's payload once, encodes it to
JSON text once, and hands the same text to every subscriber. A book's levels are formatted once per
market, each depth's text being a join of the first levels (so distinct depths cost a join each). A
book or account payload is sent only when it changed since the last block.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import islice
from types import SimpleNamespace
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from bastion.api.views import (
    MAX_DEPTH, describe_subaccount, get_market_or_404, get_subaccount_or_404, price_text, size_text,
)
from bastion.core.book import BUY, SELL
from bastion.core.errors import ProtocolError
from bastion.core.events import Topic, event_types
from bastion.core.messages import normalize_address
from bastion.core.timefmt import format_iso_ms
from bastion.node.blocklog import LoggedBlock
from bastion.node.node import Node
from bastion.presentation import format_event

CHANNELS = ("blocks", "book", "trades", "account", "governance")
# every event type declared on the governance topic (bastion.core.events): proposals, votes, parameters,
# the council, the guardian, a delisting's settlement price, rollouts and executed actions
GOVERNANCE_EVENT_TYPES = frozenset(event_types(Topic.GOVERNANCE))
MAX_QUEUE = 256  # messages a connection may fall behind (shared texts: references, not copies)
MAX_QUEUE_BYTES = 1 << 20  # and bytes: a connection holds at most this much of the node's memory
DEFAULT_DEPTH = 20
COMMANDS_PER_S = 20  # commands a connection may send (token bucket; more are answered rate_limited)
COMMAND_BURST = 100
CLOSE = object()  # queued: close the connection with the code and reason it carries


@dataclass(frozen=True)
class HubLimits:
    """The WebSocket bounds (``ApiConfig.ws_*``; see the module docstring)."""

    max_connections: int = 1_000
    max_per_ip: int = 50
    max_subscriptions: int = 50
    idle_s: float = 60.0


@dataclass(eq=False)  # hashed by identity: connections live in a set
class Connection:
    """One WebSocket: its loop and bounded outgoing queue, its subscriptions and the last account
    payload it was sent of each (without the height)."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    address: str = ""
    subscriptions: dict[tuple, None] = field(default_factory=dict)
    last: dict[tuple, str] = field(default_factory=dict)
    overflowed: bool = False
    close_reason: tuple[int, str] | None = None
    queued_bytes: int = 0

    def push(self, texts: list[str]) -> None:
        """Thread-safe: hand encoded messages to the connection's loop (``put``)."""
        try:
            self.loop.call_soon_threadsafe(self.put, texts)
        except RuntimeError:  # the loop is closed: the connection is gone
            pass

    def put(self, texts: list[str]) -> bool:
        """In the connection's loop: queue ``texts``, or drop a connection that would fall more
        than ``MAX_QUEUE`` messages or ``MAX_QUEUE_BYTES`` behind: its queue is emptied and it
        closes (1013). False if it was dropped (or already was)."""
        if self.overflowed:
            return False
        size = sum(map(len, texts))
        if self.queue.qsize() + len(texts) > MAX_QUEUE or self.queued_bytes + size > MAX_QUEUE_BYTES:
            self.drop(1013, f"slow consumer: more than {MAX_QUEUE} messages or {MAX_QUEUE_BYTES} bytes behind")
            return False
        self.queued_bytes += size
        for text in texts:
            self.queue.put_nowait(text)
        return True

    def drop(self, code: int, reason: str) -> None:
        """In the connection's loop: forget what is queued and close with ``code`` and ``reason``."""
        self.overflowed = True
        self.close_reason = (code, reason)
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued_bytes = 0
        self.queue.put_nowait(CLOSE)


def parse_subscription(command: Any) -> tuple:
    """A subscription key from a command: ``("book", ticker, depth)``, ``("account", owner, n)``..."""
    if not isinstance(command, dict) or command.get("op") not in ("subscribe", "unsubscribe"):
        raise ProtocolError("invalid_command", "send {\"op\": \"subscribe\" | \"unsubscribe\", \"channel\": ...}",
                            field="op")
    channel = command.get("channel")
    if channel not in CHANNELS:
        raise ProtocolError("unknown_channel", f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    if channel in ("blocks", "governance"):
        return (channel,)
    if channel == "account":
        number = command.get("number", 0)
        if not isinstance(number, int) or isinstance(number, bool):
            raise ProtocolError("invalid_field", "number must be an integer", field="number")
        return (channel, normalize_address(command.get("owner"), field="owner"), number)
    market = command.get("market")
    if not isinstance(market, str):
        raise ProtocolError("missing_field", f"the {channel} channel needs a market", field="market")
    if channel == "book":
        depth = command.get("depth", DEFAULT_DEPTH)
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
            raise ProtocolError("invalid_depth", f"depth must be an integer in 1..{MAX_DEPTH}", field="depth")
        return (channel, market, depth)
    return (channel, market)


def _raw_levels(market: Any, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The top ``depth`` (price, lots) levels of each side: integers, copied (caller holds the lock)."""
    return list(islice(market.book.iter_levels(BUY), depth)), list(islice(market.book.iter_levels(SELL), depth))


def _format_book(market: Any, height: int, raw: tuple[list, list], depth: int) -> dict[str, Any]:
    """The ``book`` payload at ``depth`` from raw levels (no lock needed: a market's grid never changes)."""
    def side(levels: list) -> list[list[str | None]]:
        return [[price_text(market, ticks), size_text(market, lots)] for ticks, lots in levels[:depth]]
    return {"channel": "book", "height": height, "market": market.ticker, "bids": side(raw[0]), "asks": side(raw[1])}


def _encode(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


class Hub:
    """Every open connection; ``on_block`` (a node block listener) computes and pushes payloads."""

    def __init__(self, node: Node, limits: HubLimits | None = None) -> None:
        self.node = node
        self.limits = limits or HubLimits()
        self._connections: set[Connection] = set()
        self._per_address: dict[str, int] = defaultdict(int)
        self._watchers: dict[tuple, int] = defaultdict(int)  # subscription key -> connections holding it
        self._last: dict[tuple, str] = {}  # account key -> its last payload without the height
        self._last_books: dict[str, tuple[list, list]] = {}  # market -> its top levels at the last block
        self._lock = threading.Lock()

    # -- connections
    def admit(self, connection: Connection) -> tuple[int, str] | None:
        """Register a new connection, or the close code and reason refusing it (over a cap)."""
        with self._lock:
            if len(self._connections) >= self.limits.max_connections:
                return 1013, f"server busy: {self.limits.max_connections} WebSocket connections open"
            if self._per_address[connection.address] >= self.limits.max_per_ip:
                return 1008, f"too many connections from this address (at most {self.limits.max_per_ip})"
            self._connections.add(connection)
            self._per_address[connection.address] += 1
        return None

    def remove(self, connection: Connection) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.discard(connection)
                self._per_address[connection.address] -= 1
                if not self._per_address[connection.address]:
                    del self._per_address[connection.address]
            for key in connection.subscriptions:
                self._unwatch(key)
            connection.subscriptions.clear()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def _unwatch(self, key: tuple) -> None:
        self._watchers[key] -= 1
        if not self._watchers[key]:
            del self._watchers[key]
            self._last.pop(key, None)

    # -- subscriptions
    def snapshot(self, key: tuple) -> dict[str, Any] | None:
        """The current payload of a book or account subscription (None for the event channels);
        validates the subscription's market or subaccount. Holds the node's lock only to copy."""
        with self.node.lock:
            state = self.node.state
            height = state.height
            if key[0] == "book":
                market = get_market_or_404(state, key[1])
                raw = _raw_levels(market, key[2])
            elif key[0] == "account":
                return {"channel": "account",
                        **describe_subaccount(state, get_subaccount_or_404(state, key[1], key[2]))}
            else:
                if key[0] == "trades":
                    get_market_or_404(state, key[1])
                return None
        return _format_book(market, height, raw, key[2])

    def subscribe(self, connection: Connection, key: tuple) -> dict[str, Any] | None:
        if key not in connection.subscriptions and len(connection.subscriptions) >= self.limits.max_subscriptions:
            raise ProtocolError("too_many_subscriptions",
                                f"at most {self.limits.max_subscriptions} subscriptions per connection",
                                field="channel")
        payload = self.snapshot(key)
        with self._lock:
            if key not in connection.subscriptions:
                connection.subscriptions[key] = None
                self._watchers[key] += 1
            if payload is not None and key[0] == "account":  # books compare levels (``_book_texts``)
                connection.last[key] = _encode(_without_height(payload))
        return payload

    def unsubscribe(self, connection: Connection, key: tuple) -> None:
        with self._lock:
            if key in connection.subscriptions:
                del connection.subscriptions[key]
                self._unwatch(key)
            connection.last.pop(key, None)

    # -- blocks
    def on_block(self, block: LoggedBlock) -> None:
        """Compute each watched channel's payload for ``block`` once, then fan the same texts out."""
        with self._lock:  # the keys of live connections (a dropped one costs nothing while it closes)
            keys = list({key: None for c in self._connections if not c.overflowed for key in c.subscriptions})
            if not keys:
                return
        changed = bool(block.tx_count or block.events)  # an empty block changes no book or account
        books: dict[str, int] = {}
        accounts: list[tuple] = []
        for key in keys:
            if key[0] == "book" and changed:
                books[key[1]] = max(books.get(key[1], 0), key[2])
            elif key[0] == "account" and changed:
                accounts.append(key)
        raw_books: dict[str, tuple[Any, tuple[list, list]]] = {}
        account_payloads: dict[tuple, dict[str, Any] | None] = {}
        with self.node.lock:  # one quick pass: copy integers, read the watched subaccounts
            state = self.node.state
            grid = SimpleNamespace(markets=dict(state.markets))  # decimals only: a market's grid never changes
            for ticker, depth in books.items():
                market = state.markets.get(ticker)
                if market is not None:
                    raw_books[ticker] = (market, _raw_levels(market, depth))
            for key in accounts:
                sub = state.subaccounts.get((key[1], key[2]))
                account_payloads[key] = None if sub is None else {"channel": "account",
                                                                   **describe_subaccount(state, sub)}
        height = block.height
        texts: dict[tuple, str | None] = {("blocks",): _encode({
            "channel": "blocks", "height": height, "time": format_iso_ms(block.time_ms),
            "state_hash": block.state_hash, "block_hash": block.block_hash, "tx_count": block.tx_count})}
        fills: dict[str, list] = {}
        governance = []
        for event in block.events:
            if event["type"] == "fill":
                fills.setdefault(event["market"], []).append(format_event(event, grid))  # type: ignore[arg-type]
            elif event["type"] in GOVERNANCE_EVENT_TYPES:
                governance.append(format_event(event, grid))  # type: ignore[arg-type]
        texts[("governance",)] = _encode({"channel": "governance", "height": height, "events": governance}) \
            if governance else None
        book_texts = self._book_texts(height, raw_books, [key for key in keys if key[0] == "book"])
        comparable: dict[tuple, str] = {}
        for key in keys:
            payload: dict[str, Any] | None = None
            if key[0] == "trades":
                trades = fills.get(key[1])
                payload = ({"channel": "trades", "market": key[1], "height": height, "trades": trades}
                           if trades else None)
            elif key[0] == "book":
                texts[key] = book_texts.get(key)
                continue
            elif key[0] == "account":
                payload = account_payloads.get(key)
            elif key[0] in ("blocks", "governance"):
                continue
            if payload is not None and key[0] == "account":
                comparable[key] = _encode(_without_height(payload))
            texts[key] = None if payload is None else _encode(payload)
        with self._lock:
            for key, body in comparable.items():
                if self._last.get(key) == body:
                    texts[key] = None  # unchanged since the last block: nobody is sent it
                else:
                    self._last[key] = body
            connections = [c for c in self._connections if c.subscriptions and not c.overflowed]
            outgoing = []
            for connection in connections:
                batch = []
                for key in connection.subscriptions:
                    text = texts.get(key)
                    if text is None:
                        continue
                    if key in comparable:
                        if connection.last.get(key) == comparable[key]:
                            continue  # its subscription snapshot already showed this
                        connection.last[key] = comparable[key]
                    batch.append(text)
                if batch:
                    outgoing.append((connection, batch))
        for connection, batch in outgoing:
            connection.push(batch)


    def _book_texts(self, height: int, raw_books: dict[str, tuple[Any, tuple[list, list]]],
                    keys: list[tuple]) -> dict[tuple, str]:
        """The ``book`` text of each watched (market, depth) whose top ``depth`` levels changed since
        the last block. Each level is formatted and encoded once per market (at the deepest watched
        depth); a depth's text is a join of the first ``depth`` encoded levels, so distinct depths
        cost a string join each, not a formatting pass."""
        out: dict[tuple, str] = {}
        encoded: dict[str, tuple[list[str], list[str]]] = {}
        for key in keys:
            ticker, depth = key[1], key[2]
            if ticker not in raw_books:
                continue
            market, (bids, asks) = raw_books[ticker]
            last = self._last_books.get(ticker)
            if last is not None and last[0][:depth] == bids[:depth] and last[1][:depth] == asks[:depth] \
                    and (len(last[0]) >= depth or len(last[0]) == len(bids)) \
                    and (len(last[1]) >= depth or len(last[1]) == len(asks)):
                continue  # this depth's view did not change
            if ticker not in encoded:
                encoded[ticker] = tuple(  # type: ignore[assignment]
                    [_encode([price_text(market, ticks), size_text(market, lots)]) for ticks, lots in side]
                    for side in (bids, asks))
            bid_texts, ask_texts = encoded[ticker]
            out[key] = (f'{{"channel":"book","height":{height},"market":{json.dumps(ticker)},'
                        f'"bids":[{",".join(bid_texts[:depth])}],"asks":[{",".join(ask_texts[:depth])}]}}')
        for ticker, (_, raw) in raw_books.items():
            self._last_books[ticker] = raw
        return out


def _without_height(payload: dict[str, Any] | None) -> Any:
    return None if payload is None else {k: v for k, v in payload.items() if k != "height"}


async def serve_connection(hub: Hub, websocket: WebSocket) -> None:
    """Run one WebSocket: read commands, write pushes, until either side closes or it is dropped."""
    await websocket.accept()
    address = websocket.client.host if websocket.client else ""
    connection = Connection(asyncio.get_running_loop(), asyncio.Queue(), address)
    refused = hub.admit(connection)
    if refused is not None:
        await websocket.close(code=refused[0], reason=refused[1])
        return

    loop = asyncio.get_running_loop()
    tokens, refilled = float(COMMAND_BURST), loop.time()

    async def read() -> None:
        nonlocal tokens, refilled
        while True:
            timeout = None if connection.subscriptions else hub.limits.idle_s
            try:
                text = await asyncio.wait_for(websocket.receive_text(), timeout)
            except TimeoutError:
                connection.drop(1008, f"idle: no subscription for {hub.limits.idle_s:g} s")
                return
            now = loop.time()
            tokens = min(COMMAND_BURST, tokens + (now - refilled) * COMMANDS_PER_S)
            refilled = now
            try:
                if tokens < 1:
                    raise ProtocolError("rate_limited", f"at most {COMMANDS_PER_S} commands a second", field="op")
                tokens -= 1
                command = json.loads(text)
                key = parse_subscription(command)
                if command["op"] == "unsubscribe":
                    hub.unsubscribe(connection, key)
                    reply: dict[str, Any] = {"type": "unsubscribed", "channel": key[0]}
                else:  # the snapshot waits for the node's lock: in a worker thread, never in the event loop
                    snapshot = await run_in_threadpool(hub.subscribe, connection, key)
                    reply = {"type": "subscribed", "channel": key[0], "snapshot": snapshot}
            except (ValueError, RecursionError):
                reply = {"type": "error", "code": "invalid_json", "message": "a command is a JSON object"}
            except ProtocolError as error:
                reply = {"type": "error", "code": error.code, "message": error.message}
            if not connection.put([_encode(reply)]):
                return

    async def write() -> None:
        while True:
            text = await connection.queue.get()
            if text is CLOSE:
                code, reason = connection.close_reason or (1013, "closed")
                await websocket.close(code=code, reason=reason)
                return
            connection.queued_bytes -= len(text)
            await websocket.send_text(text)

    tasks = [asyncio.create_task(read()), asyncio.create_task(write())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done and not tasks[0].exception() and connection.overflowed:
            await asyncio.wait([tasks[1]], timeout=5)  # let the writer send the close frame
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, WebSocketDisconnect | OSError | RuntimeError):
                raise error
    finally:
        hub.remove(connection)
