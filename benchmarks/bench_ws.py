#!/usr/bin/env python3
"""A node with many WebSocket subscribers, then under the bounded-I/O attacks: RSS and block pace.

    python benchmarks/bench_ws.py [--subscribers 1000] [--seconds 10]

A ``bastion node`` process (unsigned, loopback, 100 ms blocks, no read models) while a load
generator trades BTC-USD every 100 ms (the book and the trades change every block):

1. ``idle``: no subscriber: blocks/s and the node's RSS (``VmRSS``);
2. ``subscribers``: ``--subscribers`` WebSockets (from 20 loopback addresses, 127.0.0.2-21, within
   the per-address cap), each on ``book`` (depth 20), ``trades`` and ``blocks``, reading everything:
   blocks/s, RSS, messages received per second;
3. ``attack``: the same subscribers go on reading while 30 never-reading clients hold 48 deep books
   each at distinct depths, one connection asks for 500 book depths (the cap refuses 450), and 400
   idle sockets are opened: blocks/s, RSS, how many never-reading clients were dropped.

Prints one JSON line per phase. Record figures in docs/benchmarks.md with the command, date and machine.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

SRC = Path(__file__).resolve().parents[1] / "src"
TRADERS = [f"0x{0x100 + i:040x}" for i in range(8)]
BTC = "BTC-USD"


def genesis() -> dict:
    market = {"ticker": BTC, "size_decimals": 4, "price_decimals": 1, "liquidity_tier": 0, "min_order_size": "0.0001",
              "maker_fee": "0.0001", "taker_fee": "0.0005", "oracle_price": "50000"}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"chain_id": "bastion-bench", "time": now, "bridge_operator": f"0x{0xb1:040x}",
            "oracle": {"operators": [f"0x{0xa1:040x}"], "min_sources": 1, "max_staleness_s": 3_600,
                       "max_source_deviation": "0.05", "max_move_per_block": "0.1"},
            "markets": [market], "funding": {"default_funding": "0.0001"}, "fees": {"insurance_share": "0.1"},
            "insurance_funds": {"cross": "100000"},
            "accounts": [{"address": t, "subaccounts": [{"number": 0, "usdc": "10000000"}]} for t in TRADERS]}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Load(threading.Thread):
    """~600 resting levels, then 4 orders every 100 ms (two crossing), bounded by ``stop``."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.http, self.stop, self.nonce = httpx.Client(base_url=url, timeout=10), threading.Event(), 0
        self.http.post("/v1/tx/batch", json={
            "txs": [self.order(TRADERS[i % 4], "buy", 49_900 - i) for i in range(300)]
            + [self.order(TRADERS[4 + i % 4], "sell", 50_100 + i) for i in range(300)]})

    def order(self, trader: str, side: str, price: int) -> dict:
        self.nonce += 1
        return {"sender": trader, "nonce": self.nonce, "msg": {"type": "place_order", "subaccount": 0, "market": BTC,
                                                               "side": side, "size": "0.01", "price": str(price),
                                                               "client_id": self.nonce}}

    def run(self) -> None:
        step = 0
        while not self.stop.wait(0.1) and step < 10_000:
            step += 1
            self.http.post("/v1/tx/batch", json={"txs": [
                self.order(TRADERS[step % 4], "buy", 50_000 + step % 7),
                self.order(TRADERS[4 + step % 4], "sell", 49_990 + step % 5),
                self.order(TRADERS[(step + 1) % 4], "buy", 49_950 - step % 40),
                self.order(TRADERS[4 + (step + 1) % 4], "sell", 50_050 + step % 40)]})


async def subscriber(url: str, index: int, counts: list[int], stop: asyncio.Event) -> None:
    host = f"127.0.0.{2 + index % 20}"
    async with connect(url, local_addr=(host, 0), open_timeout=60, max_queue=None) as ws:
        for command in ({"channel": "book", "market": BTC, "depth": 20}, {"channel": "trades", "market": BTC},
                        {"channel": "blocks"}):
            await ws.send(json.dumps({"op": "subscribe", **command}))
        counts[2] += 1
        while not stop.is_set():
            try:
                await asyncio.wait_for(ws.recv(), 0.5)
                counts[0] += 1
            except TimeoutError:
                continue
            except ConnectionClosed:
                counts[1] += 1  # dropped by the node (a subscriber that fell behind)
                return


def frame(text: str) -> bytes:
    payload, mask = text.encode(), os.urandom(4)
    n = len(payload)
    header = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def never_reading(port: int, index: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4_096)
    sock.bind((f"127.0.1.{1 + index}", 0))
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    for j in range(48):
        sock.sendall(frame(json.dumps({"op": "subscribe", "channel": "book", "market": BTC,
                                       "depth": 101 + (index * 48 + j) % 400})))
    return sock


def dropped(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        while sock.recv(1 << 16):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except BlockingIOError:
        return False


def log_height(data: Path) -> int:
    """The head of the node's block log, read from its SQLite file (not through the API under test)."""
    with sqlite3.connect(f"file:{data / 'blocks.db'}?mode=ro", uri=True, timeout=10) as db:
        return db.execute("SELECT COALESCE(MAX(height), 0) FROM blocks").fetchone()[0]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(data: Path, pid: int, seconds: float) -> dict:
    """Blocks/s (from the log), the node's peak RSS, and the CPU (in cores) of the node and of this
    client process over ``seconds``."""
    start, started, peak = log_height(data), time.monotonic(), 0.0
    node_cpu, client_cpu = cpu_s(pid), cpu_s(os.getpid())
    while time.monotonic() - started < seconds:
        peak = max(peak, rss_mb(pid))
        time.sleep(0.25)
    blocks, elapsed = log_height(data) - start, time.monotonic() - started
    return {"blocks_per_s": round(blocks / elapsed, 2), "rss_peak_mb": round(peak, 1),
            "node_cpu_cores": round((cpu_s(pid) - node_cpu) / elapsed, 2),
            "client_cpu_cores": round((cpu_s(os.getpid()) - client_cpu) / elapsed, 2)}


async def main_async(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    (work / "genesis.json").write_text(json.dumps(genesis()))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = subprocess.Popen([sys.executable, "-m", "bastion.cli.main", "node", "--data", str(work / "node"),
                             "--genesis", str(work / "genesis.json"), "--port", str(port), "--quiet", "--unsigned",
                             "--read-models", "none", "--block-time", "100", "--snapshot-every", "100",
                             "--slow-reader-timeout", "2", "--idle-timeout", "5"],
                            env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.DEVNULL,
                            stderr=(work / "node.stderr").open("wb"))
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=10)
    for _ in range(300):
        try:
            http.get("/v1/status").raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    load = Load(url)
    load.start()
    try:
        await asyncio.sleep(1)
        print(json.dumps({"phase": "idle", **measure(work / 'node', node.pid, args.seconds)}), flush=True)
        stop, counts = asyncio.Event(), [0, 0, 0]  # messages, dropped, connected
        tasks = []
        for i in range(args.subscribers):
            tasks.append(asyncio.create_task(subscriber(f"ws://127.0.0.1:{port}/v1/ws", i, counts, stop)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        connect_started = time.monotonic()
        while counts[2] < args.subscribers and time.monotonic() - connect_started < 120:
            await asyncio.sleep(0.1)
        connect_s = time.monotonic() - connect_started
        await asyncio.sleep(1)
        before = counts[0]
        figures = await asyncio.to_thread(measure, work / 'node', node.pid, args.seconds)
        print(json.dumps({"phase": "subscribers", "subscribers": counts[2],
                          "all_connected_after_s": round(connect_s, 1),
                          **figures,
                          "messages_per_s": round((counts[0] - before) / args.seconds),
                          "subscribers_dropped": counts[1]}), flush=True)
        silent = [never_reading(port, i) for i in range(30)]
        amplifier = never_reading(port, 40)  # 48 more depths from one more address...
        for depth in range(1, 501):                # ...then 500 depths on the same connection
            amplifier.sendall(frame(json.dumps({"op": "subscribe", "channel": "book", "market": BTC, "depth": depth})))
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(400)]
        before = counts[0]
        figures = await asyncio.to_thread(measure, work / 'node', node.pid, args.seconds)
        print(json.dumps({"phase": "attack", "subscribers": args.subscribers, **figures,
                          "messages_per_s": round((counts[0] - before) / args.seconds),
                          "subscribers_dropped": counts[1],
                          "never_reading_dropped": sum(dropped(s) for s in silent), "never_reading": len(silent)}),
              flush=True)
        for sock in [*silent, amplifier, *idle]:
            sock.close()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        load.stop.set()
        node.terminate()
        node.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
