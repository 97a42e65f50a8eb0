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
from builders import BTC, ETH, free_port, place_order
from test_api import ALICE, ALICE_KEY, BOB, BOB_KEY, BRIDGE_KEY, api_genesis

from bastion.app import ApiConfig, create_app
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


# ------------------------------------------------------------------------------------ trading isolated
CAROL_KEY, DAVE_KEY = "0x" + "c2" * 32, "0x" + "d2" * 32  # owners new to the chain: the bridge funds them here


def test_an_order_placed_isolated_lands_in_a_funded_isolated_subaccount_and_the_cross_one_keeps_its_position(
        live) -> None:
    url, _ = live
    with Client(url, BRIDGE_KEY) as bridge, Client(url, BOB_KEY) as bob, Client(url, CAROL_KEY) as carol:
        bridge.deposit(owner=carol.address, amount="10000", wait_ms=5_000)
        bob.place_order(market=BTC, side="sell", size="0.1", price="50000", client_id=901, wait_ms=5_000)
        carol.place_order(market=BTC, side="buy", size="0.1", price="50000", client_id=1, time_in_force="ioc",
                          wait_ms=5_000)
        bob.place_order(market=ETH, side="sell", size="1", price="3000", client_id=902, wait_ms=5_000)
        cross_before = carol.subaccount(carol.address, 0)

        outcome = carol.place_order_isolated(market=ETH, side="buy", size="1", price="3000", client_id=2)

        cross, isolated = carol.subaccount(carol.address, 0), carol.subaccount(carol.address, 1)

    assert (outcome["placed"], outcome["refused"], outcome["funds_in"]) == (True, None, None)
    assert (outcome["subaccount"], outcome["amount"], outcome["transfer_amount"]) == (1, "602", "602")
    assert [step["msg"]["type"] for step in outcome["steps"]] == ["transfer", "set_margin_mode", "place_order"]
    assert all(step["answer"]["result"]["ok"] for step in outcome["steps"])
    # cross: 10,000 - 5,000 - 2.5 fee for 0.1 BTC, then 602 moved out; its BTC position untouched
    assert (cross_before["balance"], cross["balance"]) == ("4997.5", "4395.5")
    assert cross["positions"] == cross_before["positions"] and [p["size"] for p in cross["positions"]] == ["0.1"]
    # isolated: 602 in, 3,000 paid for 1 ETH and a 1.5 taker fee
    assert (isolated["mode"], isolated["isolated_market"], isolated["balance"]) == ("isolated", ETH, "-2399.5")
    assert [(p["market"], p["size"], p["entry_price"]) for p in isolated["positions"]] == [(ETH, "1", "3000")]


def test_a_refused_isolated_order_leaves_the_transfer_reported_and_a_retry_reuses_the_funds(live) -> None:
    url, _ = live

    async def scenario() -> tuple:
        async with AsyncClient(url, BRIDGE_KEY) as bridge, AsyncClient(url, DAVE_KEY) as dave:
            await bridge.deposit(owner=dave.address, amount="10000", wait_ms=5_000)
            refused = await dave.place_order_isolated(market=ETH, side="buy", size="1", price="2999", client_id=1,
                                                      isolated_amount="1")
            left = (await dave.subaccount(dave.address, 0), await dave.subaccount(dave.address, 1))
            proposed = (await dave.preview_order(market=ETH, side="buy", size="1", price="2999"))["isolation"]
            retried = await dave.place_order_isolated(market=ETH, side="buy", size="1", price="2999", client_id=2)
            return refused, left, proposed, retried, await dave.subaccount(dave.address, 1)

    refused, (cross, isolated), proposed, retried, funded = asyncio.run(scenario())

    # 1 USDC cannot carry 1 ETH bought at 2,999 (it would rest: no ask that low): the transfer and the
    # margin mode are committed, the order is refused, and the 1 USDC is reported where it stays
    assert [step["msg"]["type"] for step in refused["steps"]] == ["transfer", "set_margin_mode", "place_order"]
    assert refused["placed"] is False and refused["funds_in"] == 1
    assert {k: refused["refused"][k] for k in ("step", "type", "code")} == {
        "step": 3, "type": "place_order", "code": "insufficient_margin"}
    assert (cross["balance"], isolated["balance"], isolated["mode"], isolated["isolated_market"]) == (
        "9999", "1", "isolated", ETH)
    assert isolated["positions"] == []
    # the retry finds subaccount 1 isolated to ETH and idle: it tops it up to the proposed amount (less the 1
    # it holds; the amount depends on ETH's open interest, so on the tests before) and places the order
    assert (proposed["target_subaccount"], proposed["transfer_amount"]) == (
        1, str(int(proposed["proposed_amount"]) - 1))
    assert (retried["placed"], retried["subaccount"], retried["transfer_amount"]) == (
        True, 1, proposed["transfer_amount"])
    assert [step["msg"]["type"] for step in retried["steps"]] == ["transfer", "place_order"]
    assert funded["balance"] == proposed["proposed_amount"] == retried["amount"]


# ------------------------------------------------------------------------------------ bot tools (issue 17)
ERIN_KEY, FRANK_KEY, GINA_KEY = "0x" + "e2" * 32, "0x" + "f2" * 32, "0x" + "a3" * 32


def test_a_bot_modifies_its_order_through_the_sdk_and_only_a_smaller_size_keeps_the_order_id(live) -> None:
    url, _ = live
    with Client(url, BRIDGE_KEY) as bridge, Client(url, ERIN_KEY) as erin, Client(url, BOB_KEY) as bob:
        bridge.deposit(owner=erin.address, amount="10000", wait_ms=5_000)
        placed = erin.place_order(market=BTC, side="sell", size="0.1", price="70000", client_id=1, wait_ms=5_000)
        repriced = erin.modify_order(market=BTC, client_id=1, price="70100", wait_ms=5_000)
        reduced = erin.modify_order(market=BTC, client_id=1, size="0.05", wait_ms=5_000)
        theirs = bob.modify_order(market=BTC, order_id=repriced["result"]["order_id"], size="0.01", wait_ms=5_000)
        orders = erin.open_orders(erin.address, 0)

    first = placed["result"]["order_id"]
    assert repriced["result"]["ok"] is True and repriced["result"]["replaced_order_id"] == first
    assert repriced["result"]["kept_priority"] is False and repriced["result"]["order_id"] > first
    assert reduced["result"]["ok"] is True and reduced["result"]["kept_priority"] is True
    assert reduced["result"]["order_id"] == repriced["result"]["order_id"]
    assert (theirs["result"]["ok"], theirs["result"]["code"]) == (False, "order_not_found")
    assert [(o["order_id"], o["price"], o["remaining"]) for o in orders["orders"]] == [
        (repriced["result"]["order_id"], "70100", "0.05")]


def test_a_silent_bot_loses_its_orders_to_the_dead_mans_switch(live) -> None:
    url, _ = live
    with Client(url, BRIDGE_KEY) as bridge, Client(url, FRANK_KEY) as frank:
        bridge.deposit(owner=frank.address, amount="10000", wait_ms=5_000)
        frank.place_order(market=BTC, side="buy", size="0.1", price="40000", client_id=1, wait_ms=5_000)
        too_soon = frank.schedule_cancel(time_ms=time.time_ns() // 1_000_000, wait_ms=5_000)
        armed = frank.schedule_cancel(time_ms=time.time_ns() // 1_000_000 + 6_000, wait_ms=5_000)
        before = frank.open_orders(frank.address, 0)["orders"]
        deadline = time.monotonic() + 20
        after = before
        while after and time.monotonic() < deadline:  # the switch fires ~6 s after it was armed
            time.sleep(0.5)
            after = frank.open_orders(frank.address, 0)["orders"]

    assert (too_soon["result"]["ok"], too_soon["result"]["code"]) == (False, "schedule_too_soon")
    assert armed["result"]["ok"] is True and len(before) == 1
    assert after == []


def test_a_twap_trades_its_first_slice_at_once_and_stops_when_cancelled(live) -> None:
    url, node = live
    with Client(url, BRIDGE_KEY) as bridge, Client(url, GINA_KEY) as gina, Client(url, BOB_KEY) as bob:
        bridge.deposit(owner=gina.address, amount="10000", wait_ms=5_000)
        bob.place_order(market=ETH, side="sell", size="2", price="3000", client_id=903, wait_ms=5_000)
        placed = gina.place_twap(market=ETH, side="buy", size="2", duration_ms=600_000, max_slippage="0.01",
                                 wait_ms=5_000)
        twap_id = placed["result"]["twap_id"]
        cancelled = gina.cancel_twap(twap_id=twap_id, wait_ms=5_000)
        again = gina.cancel_twap(twap_id=twap_id, wait_ms=5_000)
        account = gina.subaccount(gina.address, 0)

    # 2 ETH over 600 s: 20 slices, the first (2 x 1 / 20 = 0.1 ETH) at the end of the placing block,
    # bought from bob's 3,000 offer (within 1% of the 3,000 oracle price)
    assert placed["result"]["ok"] is True and placed["result"]["slices"] == 20
    assert cancelled["result"]["ok"] is True and cancelled["result"]["filled"] == 1_000  # lots: ETH has 4 decimals
    assert (again["result"]["ok"], again["result"]["code"]) == (False, "twap_not_found")
    assert [(p["market"], p["size"]) for p in account["positions"]] == [(ETH, "0.1")]
