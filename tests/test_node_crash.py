"""Crash safety of a real node process (issue 4, "Proof").

A node runs as a separate process (``bastion node``); a client streams deposits and orders to its
HTTP intake and records which transactions the node reported committed; the node is killed with
SIGKILL at a random moment, restarted on the same data directory, and so on. Then:

* every acknowledged transaction is in the log exactly once (a resubmission with the same nonce is
  refused with ``duplicate_nonce``, and unacknowledged ones are resubmitted after each restart);
* nothing is applied twice: the state's total deposits equal the sum of the committed deposits,
  each of which carries a distinct amount;
* the restarted node's state hash equals a clean replay of the same log (``verify_log``).

CI kills the node 20 times; the slow suite 60 times.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from builders import BRIDGE, address, free_port, genesis as make_genesis, place_order

from bastion.core.timefmt import format_iso_ms
from bastion.node.blocklog import BlockLog
from bastion.node.node import Node
from bastion.node.replay import verify_log

TRADERS = [address(0x100 + i) for i in range(8)]


def crash_genesis() -> dict:
    doc = make_genesis(accounts=[{"address": t, "subaccounts": [{"number": 0, "usdc": "1000000"}]} for t in TRADERS])
    # blocks follow the node's wall clock: start the chain now and keep the genesis prices fresh
    doc["time"] = format_iso_ms(time.time_ns() // 1_000_000 // 1_000 * 1_000)
    doc["oracle"]["max_staleness_s"] = 3_600
    return doc


def envelope(n: int) -> dict:
    """Transaction number n: a deposit with a unique amount (from the bridge, nonce n), or an order."""
    if n % 3:
        return {"sender": BRIDGE, "nonce": n,
                "msg": {"type": "deposit", "owner": TRADERS[n % len(TRADERS)], "subaccount": 0,
                        "amount": f"{n}.{n % 997:06d}"}}
    trader = TRADERS[n % len(TRADERS)]
    side = "buy" if n % 2 else "sell"
    price = str(50_000 + (n % 11 - 5) * 10)
    return {"sender": trader, "nonce": n,
            "msg": place_order(side=side, size="0.01", price=price, client_id=n)}


def deposit_micro(n: int) -> int:
    return n * 1_000_000 + n % 997


class Client:
    """Submits envelopes and records acknowledgements until its node dies."""

    def __init__(self, port: int) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2.0)
        self.acked: set[tuple[str, int]] = set()
        self.submitted: set[tuple[str, int]] = set()

    def wait_ready(self, process: subprocess.Popen, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"node exited with {process.returncode}: {process.stderr.read().decode()}")
            try:
                self.http.get("/v1/status").raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("node did not start")

    def submit(self, env: dict) -> str:
        response = self.http.post("/v1/tx", json=env)
        body = response.json()
        key = (env["sender"], env["nonce"])
        self.submitted.add(key)
        if response.status_code == 202:
            return "accepted"
        assert body["code"] == "duplicate_nonce", body
        return "duplicate"

    def poll(self, keys: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """The keys the node now reports committed (they are acknowledged from here on)."""
        done = []
        for sender, nonce in keys:
            status = self.http.get(f"/v1/tx/{sender}/{nonce}").json()
            if status["status"] == "committed":
                self.acked.add((sender, nonce))
                done.append((sender, nonce))
        return done


def start(data: Path, genesis_file: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "bastion.cli.main", "node", "--data", str(data), "--genesis",
               str(genesis_file), "--port", str(port), "--block-time", "40", "--snapshot-every", "7", "--quiet",
               "--unsigned"]  # durability, not signatures, is tested here (those are in test_api.py)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_crashes(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    genesis = crash_genesis()
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(genesis))
    data = tmp_path / "node"
    next_n = 1
    acked: set[tuple[str, int]] = set()
    unacked: list[int] = []  # submitted in an earlier life, not known to be committed
    for _ in range(kills):
        port = free_port()
        process = start(data, genesis_file, port)
        client = Client(port)
        try:
            client.wait_ready(process)
            # after a restart: what survived is committed now or was lost; resubmit the lost ones
            survivors = client.poll([(envelope(n)["sender"], n) for n in unacked])
            for n in unacked:
                if (envelope(n)["sender"], n) not in survivors:
                    client.submit(envelope(n))
            deadline = time.monotonic() + rng.uniform(0.1, 0.8)
            batch: list[tuple[str, int]] = [(envelope(n)["sender"], n) for n in unacked]
            killer = threading.Timer(deadline - time.monotonic(), os.kill, (process.pid, signal.SIGKILL))
            killer.start()
            try:
                while process.poll() is None:
                    for _ in range(10):
                        client.submit(envelope(next_n))
                        batch.append((envelope(next_n)["sender"], next_n))
                        next_n += 1
                    done = set(client.poll(batch))
                    batch = [key for key in batch if key not in done]
            except httpx.HTTPError:
                pass  # the node died under us
            killer.join()
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            client.http.close()
        acked |= client.acked
        unacked = sorted(n for n in range(1, next_n) if (envelope(n)["sender"], n) not in acked)
    assert len(acked) > kills, "too few acknowledgements to prove anything"

    node = Node(data)  # recovers like a restarted process
    try:
        log = node.log
        for sender, nonce in acked:
            assert log.find_tx(sender, nonce) is not None, f"acknowledged {sender}/{nonce} lost"
        committed = [tx for block in log.iter_blocks(1) for tx in block.txs]
        keys = [(tx.sender, tx.nonce) for tx in committed]
        assert len(keys) == len(set(keys)), "a transaction was logged twice"
        deposits = sum(deposit_micro(tx.nonce) for tx in committed if tx.msg["type"] == "deposit")
        assert node.state.total_deposits - sum_genesis_usdc(genesis) == deposits, "a deposit applied twice or lost"
        live_hash, live_height = node.state.state_hash, node.state.height
    finally:
        node.close()
    report = verify_log(data)
    assert (report["height"], report["state_hash"]) == (live_height, live_hash)


def sum_genesis_usdc(genesis: dict) -> int:
    return sum(int(sub["usdc"]) * 1_000_000 for account in genesis["accounts"] for sub in account["subaccounts"])


def test_twenty_kill_nines_lose_nothing_acknowledged(tmp_path: Path) -> None:
    run_crashes(tmp_path, kills=20, seed=1)


@pytest.mark.slow
def test_sixty_kill_nines_lose_nothing_acknowledged(tmp_path: Path) -> None:
    run_crashes(tmp_path, kills=60, seed=2)


def test_a_corrupted_or_truncated_log_tail_is_refused(tmp_path: Path) -> None:
    """A changed byte in a block, a block missing before the head, the head block cut off, and a
    file cut short are each reported with the height (or as a damaged file), and the node refuses
    to start (exit code 3)."""
    genesis = crash_genesis()
    data = tmp_path / "node"
    genesis["time"] = "2026-01-01T00:00:00Z"
    node = Node(data, genesis, snapshot_every=0, clock_ms=iter(range(1_767_225_601_000, 10**13, 1_000)).__next__)
    for n in range(1, 31):
        node.submit(envelope(n))
        if n % 10 == 0:
            node.produce_block()
    node.close()
    pristine = (data / "blocks.db").read_bytes()

    def reopen_fails() -> str:
        process = subprocess.run([sys.executable, "-m", "bastion.cli.main", "node", "--data", str(data),
                                  "--port", str(free_port())], capture_output=True, timeout=120)
        assert process.returncode == 3, process.stderr.decode()
        return " ".join(process.stderr.decode().split())

    log = BlockLog(data / "blocks.db")
    (events,) = log.db.execute("SELECT events FROM blocks WHERE height = 3").fetchone()
    flipped = bytearray(events)
    flipped[len(flipped) // 2] ^= 0x01  # one bit of the stored (compressed) events
    log.db.execute("UPDATE blocks SET events = ? WHERE height = 3", (bytes(flipped),))
    log.close()
    assert "corrupted at height 3: events do not match their root" in reopen_fails()

    (data / "blocks.db").write_bytes(pristine)
    log = BlockLog(data / "blocks.db")
    log.db.execute("DELETE FROM blocks WHERE height = 2")
    log.close()
    assert "corrupted at height 2: block 2 is missing (found 3)" in reopen_fails()

    (data / "blocks.db").write_bytes(pristine)  # the head block cut off, its transactions still indexed
    log = BlockLog(data / "blocks.db")
    log.db.execute("DELETE FROM blocks WHERE height = 3")
    log.close()
    assert "the log ends at block 2 but it reached block 3" in reopen_fails()

    (data / "blocks.db").write_bytes(pristine[: len(pristine) // 2])
    for suffix in ("-wal", "-shm"):
        (data / f"blocks.db{suffix}").unlink(missing_ok=True)
    message = reopen_fails()
    assert "corrupted" in message or "malformed" in message or "quick_check" in message
