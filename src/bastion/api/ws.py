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

Errors are ``{"type": "error", "code", "message"}`` and leave the connection open. Payloads are
computed once per block in the block producer's thread (under the node's lock, so they describe that
block's state) and handed to each connection's event loop; a connection that falls
``MAX_QUEUE`` messages behind is closed (code 1013, try again later) rather than slowing the node.
"""
from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from bastion.api.views import describe_book, describe_subaccount, get_market_or_404, get_subaccount_or_404
from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.core.timefmt import format_iso_ms
from bastion.node.blocklog import LoggedBlock
from bastion.node.node import Node
from bastion.scenario import format_event

CHANNELS = ("blocks", "book", "trades", "account", "governance")
GOVERNANCE_EVENT_TYPES = {
    # proposals, votes, parameters
    "proposal_submitted", "vote_cast", "proposal_status", "proposal_extended", "deposit_returned", "deposit_burned",
    "param_changed", "delegate_changed", "bgov_transfer",
    # council (bastion.core.council)
    "stress_attested", "stress_gate_passed", "steward_change_approved", "steward_change_applied",
    # guardian (bastion.core.guardian)
    "guardian_paused", "guardian_unpaused", "pause_expired", "liquidation_grace",
    # a delisting's fixed settlement price (bastion.core.twap)
    "settlement_price",
    # staged rollouts (bastion.core.rollout)
    "rollout_started", "rollout_step", "rollout_completed", "rollout_halted", "rollout_reverted",
    # executed actions that are not parameter changes (bastion.core.actions)
    "market_listed", "treasury_spent", "insurance_transferred", "insurance_fund_merged",
}
MAX_QUEUE = 1_000
DEFAULT_DEPTH = 20


@dataclass(eq=False)  # hashed by identity: connections live in a set
class Connection:
    """One WebSocket: its loop and outgoing queue, its subscriptions and the last payload of each."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    subscriptions: dict[tuple, None] = field(default_factory=dict)
    last: dict[tuple, Any] = field(default_factory=dict)
    overflowed: bool = False

    def push(self, payload: dict[str, Any]) -> None:
        """Thread-safe: hand a payload to the connection's loop (or mark it overflowed)."""
        def put() -> None:
            if self.queue.qsize() >= MAX_QUEUE:
                self.overflowed = True
                self.queue.put_nowait(None)
            elif not self.overflowed:
                self.queue.put_nowait(payload)
        try:
            self.loop.call_soon_threadsafe(put)
        except RuntimeError:  # the loop is closed: the connection is gone
            pass


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
        if not isinstance(depth, int) or isinstance(depth, bool):
            raise ProtocolError("invalid_depth", "depth must be an integer", field="depth")
        return (channel, market, depth)
    return (channel, market)


class Hub:
    """Every open connection; ``on_block`` (a node block listener) computes and pushes payloads."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()

    def snapshot(self, key: tuple) -> dict[str, Any] | None:
        """The current payload of a book or account subscription (None for the event channels);
        validates the subscription's market or subaccount. The caller holds the node's lock."""
        state = self.node.state
        if key[0] == "book":
            return {"channel": "book", **describe_book(state, get_market_or_404(state, key[1]), key[2])}
        if key[0] == "account":
            return {"channel": "account", **describe_subaccount(state, get_subaccount_or_404(state, key[1], key[2]))}
        if key[0] == "trades":
            get_market_or_404(state, key[1])
        return None

    def subscribe(self, connection: Connection, key: tuple) -> dict[str, Any] | None:
        with self.node.lock:
            payload = self.snapshot(key)
        with self._lock:
            connection.subscriptions[key] = None
            connection.last[key] = _without_height(payload)
            self._connections.add(connection)
        return payload

    def unsubscribe(self, connection: Connection, key: tuple) -> None:
        with self._lock:
            connection.subscriptions.pop(key, None)
            connection.last.pop(key, None)

    def remove(self, connection: Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def on_block(self, block: LoggedBlock) -> None:
        with self._lock:
            connections = [c for c in self._connections if c.subscriptions and not c.overflowed]
        if not connections:
            return
        events = block.events
        with self.node.lock:
            state = self.node.state
            header = {"channel": "blocks", "height": block.height, "time": format_iso_ms(block.time_ms),
                      "state_hash": block.state_hash, "block_hash": block.block_hash, "tx_count": block.tx_count}
            fills: dict[str, list] = {}
            for event in events:
                if event["type"] == "fill":
                    fills.setdefault(event["market"], []).append(format_event(event, state))
            governance = [format_event(e, state) for e in events if e["type"] in GOVERNANCE_EVENT_TYPES]
            cache: dict[tuple, Any] = {}
            for connection in connections:
                for key in list(connection.subscriptions):
                    payload = self._payload(key, header, fills, governance, cache)
                    if payload is None:
                        continue
                    if key[0] in ("book", "account"):
                        comparable = _without_height(payload)
                        if connection.last.get(key) == comparable:
                            continue
                        connection.last[key] = comparable
                    connection.push(payload)

    def _payload(self, key: tuple, header: dict, fills: dict, governance: list, cache: dict) -> dict | None:
        height = header["height"]
        if key[0] == "blocks":
            return header
        if key[0] == "trades":
            trades = fills.get(key[1])
            return {"channel": "trades", "market": key[1], "height": height, "trades": trades} if trades else None
        if key[0] == "governance":
            return {"channel": "governance", "height": height, "events": governance} if governance else None
        if key not in cache:
            try:
                cache[key] = self.snapshot(key)
            except ProtocolError:
                cache[key] = None
        return cache[key]


def _without_height(payload: dict[str, Any] | None) -> Any:
    return None if payload is None else {k: v for k, v in payload.items() if k != "height"}


async def serve_connection(hub: Hub, websocket: WebSocket) -> None:
    """Run one WebSocket: read commands, write pushes, until either side closes."""
    await websocket.accept()
    connection = Connection(asyncio.get_running_loop(), asyncio.Queue())

    async def read() -> None:
        while True:
            text = await websocket.receive_text()
            try:
                command = json.loads(text)
                key = parse_subscription(command)
                if command["op"] == "unsubscribe":
                    hub.unsubscribe(connection, key)
                    reply = {"type": "unsubscribed", "channel": key[0]}
                else:
                    snapshot = hub.subscribe(connection, key)
                    reply = {"type": "subscribed", "channel": key[0], "snapshot": snapshot}
            except ValueError:
                reply = {"type": "error", "code": "invalid_json", "message": "a command is a JSON object"}
            except ProtocolError as error:
                reply = {"type": "error", "code": error.code, "message": error.message}
            await connection.queue.put(reply)

    async def write() -> None:
        while True:
            payload = await connection.queue.get()
            if payload is None:  # overflowed
                await websocket.close(code=1013)
                return
            await websocket.send_json(payload)

    tasks = [asyncio.create_task(read()), asyncio.create_task(write())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, WebSocketDisconnect):
                raise error
    finally:
        hub.remove(connection)
