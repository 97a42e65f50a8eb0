"""Bounded I/O and fail-stop under attack (issue 13, "Bounded I/O").

Each attack but (e) runs against a real ``bastion node`` process on loopback (unsigned mode: the
attacks are on I/O, not signatures) while a load generator trades, and asserts outcomes:

(a) never-reading WebSockets: 30 clients subscribe to busy channels (48 deep books at distinct
    depths, trades, blocks: the most a connection may hold) and never read; they are
    disconnected, the node's RSS stays within ``RSS_BOUND_MB`` of its RSS before the attack, and
    the block pace stays within ``PACE_FACTOR`` of the pace measured before the attack;
(b) subscription amplification: one connection asking for 500 book depths gets the cap (the
    rest refused: ``too_many_subscriptions``, or ``rate_limited`` past the command rate), and the
    block pace is kept;
(c) idle sockets at a low descriptor limit: a node started with ``RLIMIT_NOFILE`` = 256 and 400
    idle sockets opened against it keeps producing blocks and writing snapshots, and an honest
    transaction commits once the idle sockets are timed out;
(d) disk full: the data directory on an 8 MiB tmpfs, filled: the node exits with status 4 and one
    ``FATAL`` line; restarted with space, every acknowledged transaction is in the log exactly once
    and the deposits add up (root only; skipped with the reason otherwise);
(e) an unexpected exception inside ``apply_block`` (monkeypatched, in-process node): the node
    stops, ``/v1/status`` answers 503 ``node_stopped``, nothing of that block is acknowledged;
(f) large reads: 50,000 open orders of one subaccount read over and over by 4 clients: each answer
    is one bounded page, paging through gives every order once, and the block pace is kept.
"""
from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from builders import BRIDGE, BTC, address, free_port, genesis as make_genesis

from bastion.client import Client
from bastion.core.timefmt import format_iso_ms
from bastion.node.node import Node

TRADERS = [address(0x100 + i) for i in range(8)]
MAKER = address(0x200)  # the one subaccount of (f), with many open orders
RSS_BOUND_MB = 100      # (a): growth of the node's resident memory allowed during the attack
PACE_FACTOR = 0.5       # blocks/s under attack >= PACE_FACTOR x blocks/s before it (a shared 2-core machine)


def io_genesis() -> dict:
    accounts = [{"address": t, "subaccounts": [{"number": 0, "usdc": "10000000"}]} for t in TRADERS]
    accounts.append({"address": MAKER, "subaccounts": [{"number": 0, "usdc": "100000000"}]})
    doc = make_genesis(accounts=accounts)
    # governance may allow many open orders per subaccount: the read path must stay bounded whatever the cap (f)
    doc["order_limits"] = {"open_order_tiers": [{"min_equity": "1", "max_open_orders": 60_000}],
                           "max_open_orders": 60_000}
    doc["time"] = format_iso_ms(time.time_ns() // 1_000_000 // 1_000 * 1_000)  # blocks follow the wall clock
    doc["oracle"]["max_staleness_s"] = 3_600
    return doc


class NodeProcess:
    """``bastion node --unsigned`` on a free loopback port over ``data``."""

    def __init__(self, tmp_path: Path, data: Path, *args: str, nofile: int | None = None) -> None:
        genesis_file = tmp_path / "genesis.json"
        if not genesis_file.exists():
            genesis_file.write_text(json.dumps(io_genesis()))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "bastion.cli.main", "node", "--data", str(data), "--genesis",
                   str(genesis_file), "--port", str(self.port), "--quiet", "--unsigned", "--read-models", "none",
                   *args]

        def limit_descriptors() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log = tmp_path / f"node-{self.port}.stderr"  # a file: a pipe nobody reads would block the node
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log.open("wb"),
                                        preexec_fn=limit_descriptors)
        self.http = httpx.Client(base_url=self.url, timeout=10.0)
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"node exited with {self.process.returncode}: {self.stderr()}")
            try:
                self.http.get("/v1/status").raise_for_status()
                return
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the node did not start"
                time.sleep(0.05)

    def stderr(self) -> str:
        return self.log.read_text()

    def height(self) -> int:
        return self.http.get("/v1/status").json()["height"]

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def pace(self, seconds: float) -> float:
        """Blocks per second over ``seconds``."""
        start, started = self.height(), time.monotonic()
        time.sleep(seconds)
        return (self.height() - start) / (time.monotonic() - started)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()


class LoadGenerator:
    """Traders rest orders across ~600 price levels, then cross the top every 100 ms (bounded by
    ``stop``): the book and trades channels change every block."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10.0)
        self.stop = threading.Event()
        self.nonce = 1_000_000
        self.submitted = 0
        batch = []
        for i in range(300):
            batch.append(self._order(TRADERS[i % 4], "buy", 49_900 - i))
            batch.append(self._order(TRADERS[4 + i % 4], "sell", 50_100 + i))
        self._send(batch)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _order(self, trader: str, side: str, price: int) -> dict:
        self.nonce += 1
        return {"sender": trader, "nonce": self.nonce,
                "msg": {"type": "place_order", "subaccount": 0, "market": BTC, "side": side, "size": "0.01",
                        "price": str(price), "client_id": self.nonce}}

    def _send(self, batch: list[dict]) -> None:
        answer = self.http.post("/v1/tx/batch", json={"txs": batch})
        answer.raise_for_status()
        self.submitted += answer.json()["accepted"]

    def _run(self) -> None:
        step = 0
        while not self.stop.is_set() and step < 3_000:
            step += 1
            batch = [self._order(TRADERS[step % 4], "buy", 50_000 + step % 7),
                     self._order(TRADERS[4 + step % 4], "sell", 49_990 + step % 5),
                     self._order(TRADERS[(step + 1) % 4], "buy", 49_950 - step % 40),
                     self._order(TRADERS[4 + (step + 1) % 4], "sell", 50_050 + step % 40)]
            try:
                self._send(batch)
            except httpx.HTTPError:
                return
            self.stop.wait(0.1)

    def __enter__(self) -> LoadGenerator:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(15)
        self.http.close()


# ------------------------------------------------------------------------------------ raw WebSockets
def ws_frame(text: str) -> bytes:
    """One masked client text frame."""
    payload, mask = text.encode(), os.urandom(4)
    n = len(payload)
    header = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def raw_websocket(port: int, commands: list[dict], *, receive_buffer: int = 4_096) -> socket.socket:
    """A WebSocket that sends ``commands`` and then never reads (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    for command in commands:
        sock.sendall(ws_frame(json.dumps(command)))
    return sock


def is_dropped(sock: socket.socket, timeout_s: float) -> bool:
    """Read what the server sent until it closes (EOF or reset): True if it did within ``timeout_s``."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 16):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            continue
    return False


def baseline_pace(node: NodeProcess) -> float:
    node.pace(1.0)  # settle
    pace = node.pace(3.0)
    assert pace > 3, f"the node is too slow to measure anything ({pace:.1f} blocks/s)"
    return pace


# ------------------------------------------------------------------------------------ (a)
@pytest.mark.slow
def test_never_reading_websockets_are_dropped_and_cost_neither_memory_nor_pace(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, tmp_path / "node", "--block-time", "100", "--snapshot-every", "0",
                       "--slow-reader-timeout", "2")
    sockets: list[socket.socket] = []
    try:
        with LoadGenerator(node.url):
            before = baseline_pace(node)
            rss_before = node.rss_mb()
            for i in range(30):  # 48 deep books each, at distinct depths: 1,440 distinct payloads a block
                sockets.append(raw_websocket(node.port, [
                    *({"op": "subscribe", "channel": "book", "market": BTC, "depth": 101 + (i * 48 + j) % 400}
                      for j in range(48)),
                    {"op": "subscribe", "channel": "trades", "market": BTC},
                    {"op": "subscribe", "channel": "blocks"}]))
            rss_peak, started = rss_before, time.monotonic()
            height_start = node.height()
            while time.monotonic() - started < 10:
                rss_peak = max(rss_peak, node.rss_mb())
                assert rss_peak - rss_before < RSS_BOUND_MB, f"RSS grew {rss_peak - rss_before:.0f} MB"
                time.sleep(0.25)
            during = (node.height() - height_start) / (time.monotonic() - started)
            dropped = sum(is_dropped(s, 10.0) for s in sockets)
            assert node.process.poll() is None
    finally:
        for s in sockets:
            s.close()
        node.stop()
    print(f"(a) RSS {rss_before:.0f} -> peak {rss_peak:.0f} MB; {before:.1f} -> {during:.1f} blocks/s; "
          f"{dropped}/30 dropped")
    assert dropped == 30, f"only {dropped} of 30 never-reading clients were disconnected"
    assert rss_peak - rss_before < RSS_BOUND_MB
    assert during >= PACE_FACTOR * before, f"{during:.1f} blocks/s under attack vs {before:.1f} before"


# ------------------------------------------------------------------------------------ (b)
def test_one_connection_cannot_subscribe_to_500_book_depths(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, tmp_path / "node", "--block-time", "100", "--snapshot-every", "0",
                       "--ws-max-subscriptions", "50")
    try:
        with LoadGenerator(node.url), Client(node.url) as reader:
            before = baseline_pace(node)
            with reader.subscribe() as subscription:
                answers = []
                for depth in range(1, 501):
                    subscription.send({"op": "subscribe", "channel": "book", "market": BTC, "depth": depth})
                    while True:  # skip pushes until the reply to this command
                        message = subscription.recv()
                        if message.get("type") in ("subscribed", "error"):
                            answers.append(message)
                            break
                started, height_start = time.monotonic(), node.height()
                while time.monotonic() - started < 4:  # read the pushes as a client should
                    subscription.recv(timeout=5)
                during = (node.height() - height_start) / (time.monotonic() - started)
    finally:
        node.stop()
    assert sum(a["type"] == "subscribed" for a in answers) == 50
    refused = [a for a in answers if a["type"] == "error"]
    assert len(refused) == 450  # over the cap, or over the command rate of a connection
    assert {a["code"] for a in refused} <= {"too_many_subscriptions", "rate_limited"}
    assert any(a["code"] == "too_many_subscriptions" for a in refused)
    assert during >= PACE_FACTOR * before, f"{during:.1f} blocks/s vs {before:.1f} before"


# ------------------------------------------------------------------------------------ (c)
def newest_snapshot(data: Path) -> int:
    return max((int(p.stem) for p in (data / "snapshots").glob("*.json") if p.stem.isdigit()), default=0)


def test_idle_sockets_at_a_low_descriptor_limit_neither_halt_blocks_nor_snapshots(tmp_path: Path) -> None:
    data = tmp_path / "node"
    node = NodeProcess(tmp_path, data, "--block-time", "50", "--snapshot-every", "5", "--idle-timeout", "4",
                       nofile=256)
    idle: list[socket.socket] = []
    try:
        height, snapshot = node.height(), newest_snapshot(data)
        for _ in range(400):  # more than the node's whole descriptor limit
            sock = socket.create_connection(("127.0.0.1", node.port))
            idle.append(sock)
        time.sleep(2.5)  # held (or refused at the gate), not yet timed out
        assert node.process.poll() is None, node.stderr()
        progressed = newest_snapshot(data)
        time.sleep(2.5)  # the idle ones are closed by the node now (--idle-timeout 4)
        honest = httpx.post(f"{node.url}/v1/tx?wait_ms=5000", timeout=10, json={
            "sender": BRIDGE, "nonce": 7, "msg": {"type": "deposit", "owner": TRADERS[0], "subaccount": 0,
                                                 "amount": "12.5"}})
        after = node.height()
        alive = node.process.poll() is None
        stderr = node.stderr()
    finally:
        for sock in idle:
            sock.close()
        node.stop()
    assert alive
    assert "Too many open files" not in stderr, stderr[-2000:]  # the node never ran out of descriptors
    assert progressed >= snapshot + 20, f"snapshots stopped at {progressed} (was {snapshot})"
    assert after > height + 40
    assert honest.status_code == 200 and honest.json()["status"] == "committed", honest.text


# ------------------------------------------------------------------------------------ (d)
def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("disk-full attack needs root to mount a small tmpfs (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        pytest.skip(f"could not mount a tmpfs: {done.stderr.decode().strip()}")


def deposit_envelope(n: int) -> dict:
    return {"sender": BRIDGE, "nonce": n, "msg": {"type": "deposit", "owner": TRADERS[n % len(TRADERS)],
                                                  "subaccount": 0, "amount": f"{n}.{n % 997:06d}"}}


def test_a_full_disk_stops_the_node_cleanly_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    mount_tmpfs(mount, "8m")
    data = mount / "node"
    acked: set[int] = set()
    try:
        node = NodeProcess(tmp_path, data, "--block-time", "50", "--snapshot-every", "3")
        http, n, filled = node.http, 0, False
        deadline = time.monotonic() + 60
        try:
            while node.process.poll() is None and time.monotonic() < deadline:
                batch = [deposit_envelope(n + i) for i in range(1, 51)]
                n += 50
                try:
                    http.post("/v1/tx/batch", json={"txs": batch})
                    for envelope in batch[-3:]:
                        status = http.get(f"/v1/tx/{BRIDGE}/{envelope['nonce']}", params={"wait_ms": 500}).json()
                        if status.get("status") == "committed":
                            acked.add(envelope["nonce"])
                except (httpx.HTTPError, ValueError):
                    pass
                if not filled and n >= 500:  # fill the disk: everything still free goes to a filler file
                    try:
                        with open(mount / "filler", "wb") as filler:
                            while True:
                                filler.write(b"\0" * 65_536)
                    except OSError:
                        pass  # full (perhaps already, by the node's own files)
                    filled = True
            node.process.wait(30)
            code, stderr = node.process.returncode, node.stderr()
        finally:
            node.stop()
        assert code == 4, f"exit {code}: {stderr}"
        fatal = [line for line in stderr.splitlines() if "FATAL" in line]
        assert len(fatal) == 1 and "writing block" in fatal[0], stderr
        assert len(acked) >= 5

        (mount / "filler").unlink(missing_ok=True)
        shutil.rmtree(data / "snapshots", ignore_errors=True)  # room to restart: the log is what must survive
        restarted = NodeProcess(tmp_path, data, "--block-time", "50", "--snapshot-every", "3")
        restarted.stop()
        node_again = Node(data)
        try:
            log = node_again.log
            committed = [tx for block in log.iter_blocks(1) for tx in block.txs]
            nonces = [tx.nonce for tx in committed]
            assert len(nonces) == len(set(nonces)), "a transaction was logged twice"
            assert acked <= set(nonces), f"acknowledged {sorted(acked - set(nonces))[:5]} lost"
            genesis_usdc = 8 * 10_000_000 * 10**6 + 100_000_000 * 10**6
            assert node_again.state.total_deposits - genesis_usdc == sum(n * 1_000_000 + n % 997 for n in nonces)
        finally:
            node_again.close()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


# ------------------------------------------------------------------------------------ (e)
def test_an_exception_inside_a_block_stops_the_node_and_acknowledges_nothing(tmp_path: Path, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    import bastion.node.app
    from bastion.app import ApiConfig, create_app
    from bastion.node.node import NodeStopped

    real_apply_block = bastion.node.app.apply_block

    def poisoned(state, time_ms, txs, tx_nonces=None):  # type: ignore[no-untyped-def]
        real_apply_block(state, time_ms, txs, tx_nonces)  # the state now holds half a block nobody may see
        raise ValueError("invalid literal for int() with base 10")  # what a 5,000-digit decimal raised

    genesis = io_genesis()
    genesis["time"] = "2026-01-01T00:00:00Z"
    clock = iter(range(1_767_225_601_000, 10**13, 1_000))
    node = Node(tmp_path / "node", genesis, clock_ms=lambda: next(clock))
    api = TestClient(create_app(node, ApiConfig(unsigned=True)))
    try:
        assert api.post("/v1/tx", json=deposit_envelope(1)).status_code == 202
        node.produce_block()  # block 1: fine
        monkeypatch.setattr(bastion.node.app, "apply_block", poisoned)
        assert api.post("/v1/tx", json=deposit_envelope(2)).status_code == 202
        stop = threading.Event()
        outcome: list[BaseException] = []
        producer = threading.Thread(target=lambda: outcome.extend(_run(node, stop)))
        producer.start()
        producer.join(10)
        stop.set()
        status = api.get("/v1/status")
        tx = api.get(f"/v1/tx/{BRIDGE}/2")
        refused = api.post("/v1/tx", json=deposit_envelope(3))
        book = api.get(f"/v1/markets/{BTC}/book")
    finally:
        stop.set()
        try:
            node.flush()
        except NodeStopped:
            pass
        node.close()
    assert outcome and isinstance(outcome[0], NodeStopped)
    assert status.status_code == 503 and status.json()["code"] == "node_stopped"
    assert "applying block 2 failed" in status.json()["message"] and "ValueError" in status.json()["message"]
    assert (tx.status_code, refused.status_code, book.status_code) == (503, 503, 503)
    reopened = Node(tmp_path / "node")  # what the log holds: block 1 only; tx 2 was never acknowledged
    try:
        assert reopened.state.height == 1 and reopened.log.find_tx(BRIDGE, 2) is None
        assert reopened.log.find_tx(BRIDGE, 1) is not None
    finally:
        reopened.close()


def _run(node: Node, stop: threading.Event) -> list[BaseException]:
    try:
        node.run(stop, block_time_ms=20)
    except BaseException as error:  # noqa: BLE001 - returned to the test
        return [error]
    return []


# ------------------------------------------------------------------------------------ (f)
ORDERS = 50_000


@pytest.mark.slow
def test_reading_50000_open_orders_is_paged_and_does_not_stall_blocks(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, tmp_path / "node", "--block-time", "100", "--snapshot-every", "0",
                       "--max-block-txs", "2000", "--rate-limit", "1000000", "--burst", "1000000",
                       "--ip-rate-limit", "1000000", "--ip-burst", "1000000", "--max-pending-per-sender", "100000")
    try:
        nonce = 0
        for start in range(0, ORDERS, 2_000):  # 50,000 resting buys below the market, one subaccount
            batch = []
            for i in range(start, start + 2_000):
                nonce += 1
                batch.append({"sender": MAKER, "nonce": nonce, "msg": {
                    "type": "place_order", "subaccount": 0, "market": BTC, "side": "buy", "size": "0.0001",
                    "price": str(40_000 - i % 5_000), "client_id": nonce}})
            assert node.http.post("/v1/tx/batch", json={"txs": batch}).json()["accepted"] == 2_000
        last = node.http.get(f"/v1/tx/{MAKER}/{nonce}", params={"wait_ms": 30_000}).json()
        assert last["status"] == "committed" and last["result"]["ok"], last
        path = f"/v1/subaccounts/{MAKER}/0/orders"
        with LoadGenerator(node.url):
            before = baseline_pace(node)
            stop, sizes = threading.Event(), []

            def hammer() -> None:
                with httpx.Client(base_url=node.url, timeout=30) as http:
                    while not stop.is_set():
                        answer = http.get(path)  # what an attacker asks for: everything
                        sizes.append(len(answer.content))

            readers = [threading.Thread(target=hammer) for _ in range(4)]
            for reader in readers:
                reader.start()
            during = node.pace(5.0)
            stop.set()
            for reader in readers:
                reader.join(30)
        with Client(node.url) as client:
            paged = list(client.iter_pages(client.open_orders, MAKER, 0))
    finally:
        node.stop()
    assert sizes and max(sizes) < 1_000_000, f"a single answer of {max(sizes)} bytes"
    assert len(paged) == ORDERS and len({o["order_id"] for o in paged}) == ORDERS
    assert during >= PACE_FACTOR * before, f"{during:.1f} blocks/s while reading vs {before:.1f} before"
