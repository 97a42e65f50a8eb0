"""The SDK (``bastion.client``) against a live node in this process: uvicorn on a free loopback
port, blocks every 50 ms, read models indexed by the node's worker process."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from builders import BTC, free_port, place_order
from test_api import ALICE, ALICE_KEY, BOB, BOB_KEY, BRIDGE_KEY, api_genesis

from bastion.api.app import ApiConfig, create_app
from bastion.client import AsyncClient, BastionError, Client
from bastion.core.timefmt import format_iso_ms
from bastion.node.node import Node


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    now = format_iso_ms(time.time_ns() // 1_000_000_000 * 1_000)  # the node's clock is the wall clock
    node = Node(Path(tmp_path_factory.mktemp("live")) / "n", api_genesis(time=now), read_models="default")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(node, ApiConfig()), host="127.0.0.1", port=port,
                                           log_level="warning"))
    stop = threading.Event()
    threads = [threading.Thread(target=node.run, args=(stop, 50), daemon=True),
               threading.Thread(target=server.run, daemon=True)]
    for thread in threads:
        thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", node
    server.should_exit = True
    stop.set()
    for thread in threads:
        thread.join(10)
    node.close()


def test_a_bot_trades_reads_and_sees_history_through_the_sync_client(live) -> None:
    url, node = live
    with Client(url, ALICE_KEY) as alice, Client(url, BOB_KEY) as bob:
        rested = bob.place_order(market=BTC, side="sell", size="1", price="50000", client_id=1, wait_ms=5_000)
        taken = alice.place_order(market=BTC, side="buy", size="0.4", price="50000", client_id=1,
                                  time_in_force="ioc", wait_ms=5_000)

        account = alice.subaccount(ALICE, 0)
        book = alice.book(BTC)
        assert node.indexer is not None and node.indexer.wait_idle()
        fills = alice.fills(owner=ALICE)
        trades = alice.trades(BTC)
        candles = alice.candles(BTC, resolution="1m")
        with pytest.raises(BastionError) as forged:
            bob.submit_envelope({**alice.sign({"type": "withdraw", "subaccount": 0, "amount": "1"}), "sender": BOB})

    assert rested["status"] == taken["status"] == "committed" and taken["result"]["ok"] is True
    assert account["positions"][0]["size"] == "0.4" and account["positions"][0]["entry_price"] == "50000"
    assert book["asks"] == [["50000", "0.6"]]
    assert [(f["price"], f["size"], f["quote"]) for f in fills["rows"]] == [("50000", "0.4", "20000")]
    assert trades["rows"] == fills["rows"] and candles["rows"][0]["close"] == "50000"
    assert forged.value.code == "signer_mismatch" and forged.value.status == 401


def test_the_sync_client_withdraws_and_the_result_is_committed(live) -> None:
    url, _ = live
    with Client(url, ALICE_KEY) as alice:
        too_much = alice.withdraw(amount="1000000", wait_ms=5_000)
        fine = alice.withdraw(amount="1", wait_ms=5_000)

    assert too_much["status"] == "committed" and too_much["result"]["ok"] is False
    assert fine["result"]["ok"] is True


def test_the_async_client_batches_previews_and_streams(live) -> None:
    url, _ = live

    async def scenario() -> tuple:
        async with AsyncClient(url, BOB_KEY) as bob:
            async with bob.subscribe({"channel": "book", "market": BTC}) as socket:
                batch = await bob.submit_batch([place_order(side="sell", size="0.1", price="60000", client_id=7),
                                                {"type": "mint"}])
                pushed = None
                while pushed is None or pushed.get("channel") != "book":
                    pushed = json.loads(await asyncio.wait_for(socket.recv(), 5))
            preview = await bob.preview_order(market=BTC, side="sell", size="1", price="50000")
            markets = await bob.markets()
            return batch, pushed, preview, markets

    batch, pushed, preview, markets = asyncio.run(scenario())

    assert [(r["index"], r["status"]) for r in batch["results"]] == [(0, "accepted"), (1, "refused")]
    assert ["60000", "0.1"] in pushed["asks"]
    assert preview["accepted"] is True and preview["market"] == BTC
    assert [m["ticker"] for m in markets["markets"]][0] == BTC


def test_only_the_bridge_key_deposits_through_the_sdk(live) -> None:
    url, _ = live
    with Client(url, BRIDGE_KEY) as bridge, Client(url) as reader:
        credited = bridge.deposit(owner=ALICE, amount="5", wait_ms=5_000)
        with pytest.raises(BastionError) as no_key:
            reader.withdraw(amount="1")

    assert credited["result"]["ok"] is True and no_key.value.code == "no_private_key"
