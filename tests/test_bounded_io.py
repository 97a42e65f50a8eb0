"""Bounded I/O, in process (issue 13): WebSocket caps and close codes, the slow-consumer queue,
paginated reads with cursors, and snapshots that fail without stopping the node. The attacks
against a real node process are in ``test_attacks_io.py``."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from builders import BRIDGE, BTC, address, genesis as make_genesis
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import bastion.node.node
from bastion.app import ApiConfig, create_app
from bastion.api.ws import MAX_QUEUE, CLOSE, Connection
from bastion.client import Client
from bastion.node.node import Node

OWNER = address(0x300)
TAKER = address(0x301)


def small_genesis() -> dict:
    return make_genesis(accounts=[{"address": owner, "subaccounts": [{"number": 0, "usdc": "1000000"}]}
                                  for owner in (OWNER, TAKER)])


@pytest.fixture
def node(tmp_path: Path):
    clock = iter(range(1_767_225_601_000, 10**13, 1_000))
    the_node = Node(tmp_path / "n", small_genesis(), clock_ms=lambda: next(clock), snapshot_every=2,
                    read_models="default")
    yield the_node
    the_node.close()


def place(node: Node, count: int) -> None:
    for n in range(1, count + 1):
        node.submit({"sender": OWNER, "nonce": n, "msg": {
            "type": "place_order", "subaccount": 0, "market": BTC, "side": "buy", "size": "0.001",
            "price": str(40_000 + n), "client_id": n}})
    node.produce_block()


def test_open_orders_come_in_pages_with_a_cursor(node: Node) -> None:
    place(node, 5)
    api = TestClient(create_app(node, ApiConfig(unsigned=True)))
    path = f"/v1/subaccounts/{OWNER}/0/orders"
    first = api.get(path, params={"limit": 2}).json()
    second = api.get(path, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = api.get(path, params={"limit": 2, "cursor": second["next_cursor"]}).json()
    everything = api.get(path).json()
    bad = api.get(path, params={"cursor": "x12"})
    too_many = api.get(path, params={"limit": 1_001})

    assert [o["order_id"] for o in first["orders"]] == [1, 2] and first["next_cursor"] == "r2"
    assert [o["order_id"] for o in second["orders"]] == [3, 4] and second["next_cursor"] == "r4"
    assert [o["order_id"] for o in third["orders"]] == [5] and third["next_cursor"] is None
    assert [o["price"] for o in everything["orders"]] == ["40001", "40002", "40003", "40004", "40005"]
    assert everything["next_cursor"] is None and everything["height"] == 1
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cursor")
    assert too_many.status_code == 400


def test_history_reads_page_with_keyset_cursors_and_the_sdk_walks_them(node: Node) -> None:
    for n in range(1, 8):
        node.submit({"sender": BRIDGE, "nonce": n, "msg": {"type": "deposit", "owner": OWNER, "subaccount": 0,
                                                           "amount": "1"}})
    place(node, 3)
    node.submit({"sender": TAKER, "nonce": 1, "msg": {"type": "place_order", "subaccount": 0,
                                                               "market": BTC, "side": "sell", "size": "0.003",
                                                               "price": "40000", "client_id": 9}})
    node.produce_block()
    assert node.indexer is not None and node.indexer.wait_idle()
    api = TestClient(create_app(node, ApiConfig(unsigned=True)))
    client = Client("http://testserver", transport=api._transport)  # the SDK over the in-process app
    pages = [api.get("/v1/orders", params={"owner": OWNER, "limit": 2}).json()]
    while pages[-1]["next_cursor"] is not None:
        pages.append(api.get("/v1/orders", params={"owner": OWNER, "limit": 2,
                                                   "cursor": pages[-1]["next_cursor"]}).json())
    fills = list(client.iter_pages(client.fills, owner=OWNER, limit=1))

    assert [[row["order_id"] for row in page["rows"]] for page in pages] == [[3, 2], [1]]
    assert [(f["height"], f["seq"]) for f in fills] == sorted({(f["height"], f["seq"]) for f in fills})
    assert len(fills) == 3 and {f["price"] for f in fills} == {"40003", "40002", "40001"}
    bad = api.get("/v1/fills", params={"cursor": "1.x"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cursor")


def test_a_failed_snapshot_write_is_reported_and_retried_not_fatal(node: Node, monkeypatch) -> None:
    real = bastion.node.node.write_atomically
    failures = []

    def full_once(path, data):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(path)
            raise OSError(28, "No space left on device")
        real(path, data)

    warnings: list[str] = []
    node.on_warning = warnings.append
    monkeypatch.setattr(bastion.node.node, "write_atomically", full_once)
    node.produce_block()
    node.produce_block()  # height 2: the snapshot fails
    assert node.failure is None and node.snapshot_error is not None and "No space" in warnings[0]
    node.produce_block()
    node.produce_block()  # height 4: the next snapshot point writes it
    assert node.failure is None and node.snapshot_error is None
    assert sorted(p.name for p in (node.data_dir / "snapshots").glob("*.json")) == ["000000000004.json"]


def test_websocket_caps_refuse_with_close_codes(node: Node) -> None:
    api = TestClient(create_app(node, ApiConfig(unsigned=True, ws_max_per_ip=2, ws_max_subscriptions=2,
                                                ws_idle_s=0.2)))
    with api.websocket_connect("/v1/ws") as first, api.websocket_connect("/v1/ws") as second:
        first.send_json({"op": "subscribe", "channel": "blocks"})
        assert first.receive_json()["type"] == "subscribed"
        second.send_json({"op": "subscribe", "channel": "blocks"})
        assert second.receive_json()["type"] == "subscribed"
        with api.websocket_connect("/v1/ws") as third:  # a third from the same address
            third.send_json({"op": "subscribe", "channel": "blocks"})
            with pytest.raises(WebSocketDisconnect) as refused:
                third.receive_json()  # the close, not a reply
        assert (refused.value.code, refused.value.reason) == (1008, ("too many connections from this address "
                                                                     "(at most 2)"))
        first.send_json({"op": "subscribe", "channel": "governance"})
        assert first.receive_json()["type"] == "subscribed"
        first.send_json({"op": "subscribe", "channel": "trades", "market": BTC})
        assert first.receive_json()["code"] == "too_many_subscriptions"
    with api.websocket_connect("/v1/ws") as idle:  # no subscription: closed after ws_idle_s
        time.sleep(0.5)
        idle.send_json({"op": "subscribe", "channel": "blocks"})
        with pytest.raises(WebSocketDisconnect) as closed:
            idle.receive_json()  # the close, not a reply
    assert (closed.value.code, closed.value.reason) == (1008, "idle: no subscription for 0.2 s")


def test_a_connection_that_falls_behind_is_dropped_and_its_queue_freed() -> None:
    loop = asyncio.new_event_loop()
    try:
        connection = Connection(loop, asyncio.Queue())
        assert connection.put(["x" * 10] * (MAX_QUEUE - 1))
        assert not connection.put(["y", "z"])  # one over the cap
        assert connection.overflowed and connection.queued_bytes == 0
        assert connection.queue.qsize() == 1 and connection.queue.get_nowait() is CLOSE
        assert connection.close_reason is not None and connection.close_reason[0] == 1013
        assert not connection.put(["later"])  # nothing more is queued for it
        big = Connection(loop, asyncio.Queue())
        assert not big.put(["b" * ((1 << 20) + 1)])  # over the bytes bound at once
    finally:
        loop.close()
