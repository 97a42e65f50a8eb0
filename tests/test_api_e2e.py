"""End to end (issue 7, "Proof"): ``bastion node`` as a real process (signed mode, a temporary data
directory, a free loopback port, blocks every 100 ms, a snapshot every 5 blocks, read models
indexed), traded through the SDK (``bastion.client.Client``): a bridge deposit, resting and crossing
orders, fills, positions and open orders read back. Then ``kill -9``, a restart on the same data
directory, and the state is found intact: every block the first life committed has the same state
hash, positions, open orders and history are the same, envelopes already used are still refused,
and trading goes on."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from builders import BTC, free_port
from test_api import ALICE, ALICE_KEY, BOB, BOB_KEY, BRIDGE_KEY, api_genesis

from bastion.client import BastionError, Client
from bastion.core.timefmt import format_iso_ms

WAIT_MS = 10_000


def start(data: Path, genesis_file: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "bastion.cli.main", "node", "--data", str(data), "--genesis", str(genesis_file),
               "--port", str(port), "--block-time", "100", "--snapshot-every", "5", "--quiet"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    with Client(url) as reader:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"node exited with {process.returncode}: {process.stderr.read().decode()}")
            try:
                return reader.status()
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.05)
    raise AssertionError("the node did not start")


def wait_indexed(client: Client, height: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (client.status()["indexed_height"] or 0) < height:
        assert time.monotonic() < deadline, "the read models did not catch up"
        time.sleep(0.05)


def committed(answer: dict) -> dict:
    assert answer["status"] == "committed", answer
    assert answer["result"]["ok"] is True, answer
    return answer


def snapshot_of(client: Client) -> dict:
    """What must survive a crash (amounts that move with time, such as pending funding, left out)."""
    def positions(owner: str) -> list:
        return [(p["market"], p["size"], p["entry_price"]) for p in client.subaccount(owner, 0)["positions"]]

    def orders(owner: str) -> list:
        return [{k: o[k] for k in ("order_id", "client_id", "side", "price", "size", "remaining") if k in o}
                for o in client.open_orders(owner, 0)["orders"]]

    return {"positions": {ALICE: positions(ALICE), BOB: positions(BOB)},
            "orders": {ALICE: orders(ALICE), BOB: orders(BOB)},
            "fills": [(f["price"], f["size"], f["quote"], f["height"]) for f in client.fills(market=BTC)["rows"]],
            "book": {side: levels for side, levels in client.book(BTC).items() if side in ("bids", "asks")}}


def test_a_node_process_trades_through_the_sdk_survives_kill_9_and_resumes(tmp_path: Path) -> None:
    genesis = api_genesis(time=format_iso_ms(time.time_ns() // 1_000_000 // 1_000 * 1_000))  # blocks follow the clock
    genesis["oracle"]["max_staleness_s"] = 3_600
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(genesis))
    data = tmp_path / "node"

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(data, genesis_file, port)
    try:
        first = wait_ready(url, process)
        with Client(url, BRIDGE_KEY) as bridge, Client(url, ALICE_KEY) as alice, Client(url, BOB_KEY) as bob:
            deposit = committed(bridge.deposit(owner=ALICE, amount="1000", wait_ms=WAIT_MS))
            committed(bob.place_order(market=BTC, side="sell", size="1", price="50000", client_id=1, wait_ms=WAIT_MS))
            committed(bob.place_order(market=BTC, side="sell", size="0.5", price="51000", client_id=2,
                                      wait_ms=WAIT_MS))
            crossing = alice.sign({"type": "place_order", "subaccount": 0, "market": BTC, "side": "buy",
                                   "size": "0.4", "price": "50000", "client_id": 1, "time_in_force": "ioc"})
            taken = committed(alice.submit_envelope(crossing, wait_ms=WAIT_MS))
            resting = committed(alice.place_order(market=BTC, side="buy", size="0.1", price="49000", client_id=2,
                                                  wait_ms=WAIT_MS))
            wait_indexed(alice, resting["height"])
            before = snapshot_of(alice)
            balance = alice.subaccount(ALICE, 0)["balance"]
            last = alice.status()
            process.send_signal(signal.SIGKILL)
            process.wait(10)

        assert first["signed"] is True and deposit["height"] >= 1
        assert before["positions"] == {ALICE: [(BTC, "0.4", "50000")], BOB: [(BTC, "-0.4", "50000")]}
        assert [(o["client_id"], o["side"], o["price"], o["remaining"]) for o in before["orders"][BOB]] == [
            (1, "sell", "50000", "0.6"), (2, "sell", "51000", "0.5")]
        assert [(o["client_id"], o["price"]) for o in before["orders"][ALICE]] == [(2, "49000")]
        assert before["fills"] == [("50000", "0.4", "20000", taken["height"])]
        assert before["book"]["bids"] == [["49000", "0.1"]] and before["book"]["asks"][0] == ["50000", "0.6"]
        assert balance == "-9010"  # 10,000 + the 1,000 deposit - 20,000 paid for 0.4 BTC - a 10 USDC taker fee

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start(data, genesis_file, port)
        restarted = wait_ready(url, process)
        with Client(url, ALICE_KEY) as alice:
            wait_indexed(alice, last["height"])
            after = snapshot_of(alice)
            same_block = alice.block(last["height"])
            with pytest.raises(BastionError) as replayed:
                alice.submit_envelope(crossing)
            old = alice.tx_status(ALICE, crossing["nonce"])
            more = committed(alice.place_order(market=BTC, side="buy", size="0.1", price="50000", client_id=3,
                                               time_in_force="ioc", wait_ms=WAIT_MS))
            positions = alice.subaccount(ALICE, 0)["positions"]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)

    assert restarted["height"] >= last["height"] and restarted["recovery"]["snapshot_height"] > 0
    assert same_block["state_hash"] == last["state_hash"]  # every block of the first life is there, unchanged
    assert after == before
    assert (replayed.value.status, replayed.value.code) == (400, "duplicate_nonce")
    assert (old["status"], old["height"]) == ("committed", taken["height"])
    assert more["height"] > last["height"] and positions[0]["size"] == "0.5"


# ------------------------------------------------------------------------------------ bastion demo
def start_demo(data: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "bastion.cli.main", "demo", "--data", str(data), "--port", str(port),
               "--block-time", "100"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_bastion_demo_as_a_process_trades_through_the_sdk_survives_kill_9_and_resumes(tmp_path: Path) -> None:
    """``bastion demo`` (node, API, bots) on a temporary data dir: ALICE (the demo key the bots
    leave to visitors) takes the maker's BTC ask through the SDK. At a fixed height H after her
    fill (the bots keep trading, so nothing is compared live): block H's state hash and her fills
    up to H and her position. Then ``kill -9`` and a restart on the same dir: block H is the same,
    her fills and position are intact, her envelope is a used nonce, and the chain goes on."""
    from decimal import Decimal

    from bastion.demo.keys import get_demo_keys

    alice_key = get_demo_keys()["alice"]
    owner = alice_key.address
    data = tmp_path / "demo"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_demo(data, port)
    try:
        wait_ready(url, process)
        with Client(url, alice_key.private_key) as alice:
            deadline = time.monotonic() + 20
            while (ask := alice.book("BTC-USD", depth=1)["asks"]) == []:  # the maker's first quotes
                assert time.monotonic() < deadline, "the demo maker never quoted BTC-USD"
                time.sleep(0.1)
            limit = (Decimal(ask[0][0]) * Decimal("1.02")).quantize(Decimal(1))
            order = alice.sign({"type": "place_order", "subaccount": 0, "market": "BTC-USD", "side": "buy",
                                "size": "0.01", "price": str(limit), "client_id": 1, "time_in_force": "ioc"})
            taken = committed(alice.submit_envelope(order, wait_ms=WAIT_MS))
            height = taken["height"] + 1  # H: a block after the fill
            while alice.status()["height"] < height:
                time.sleep(0.05)
            wait_indexed(alice, height)
            header = alice.block(height)
            fills = [(f["height"], f["price"], f["size"], f["quote"]) for f in alice.fills(owner=owner)["rows"]
                     if f["height"] <= height]
            position = [(p["market"], p["size"], p["entry_price"]) for p in alice.subaccount(owner, 0)["positions"]]
            process.send_signal(signal.SIGKILL)
            process.wait(10)

        assert [f[0] for f in fills] == [taken["height"]] and sum(Decimal(f[2]) for f in fills) == Decimal("0.01")
        assert [p[:2] for p in position] == [("BTC-USD", "0.01")]

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_demo(data, port)
        restarted = wait_ready(url, process)
        with Client(url, alice_key.private_key) as alice:
            wait_indexed(alice, height)
            same_block = alice.block(height)
            fills_after = [(f["height"], f["price"], f["size"], f["quote"]) for f in alice.fills(owner=owner)["rows"]
                           if f["height"] <= height]
            position_after = [(p["market"], p["size"], p["entry_price"])
                              for p in alice.subaccount(owner, 0)["positions"]]
            with pytest.raises(BastionError) as replayed:
                alice.submit_envelope(order)
            old = alice.tx_status(owner, order["nonce"])
            deadline = time.monotonic() + 20
            while (advanced := alice.status())["height"] <= restarted["height"] + 2:
                assert time.monotonic() < deadline, "the restarted demo produces no blocks"
                time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)

    assert restarted["height"] >= height and restarted["chain_id"] == "bastion-demo"
    assert (same_block["state_hash"], same_block["block_hash"]) == (header["state_hash"], header["block_hash"])
    assert fills_after == fills and position_after == position  # nobody else trades for ALICE
    assert (replayed.value.status, replayed.value.code) == (400, "duplicate_nonce")
    assert (old["status"], old["height"]) == ("committed", taken["height"])
    assert advanced["height"] > restarted["height"] + 2
