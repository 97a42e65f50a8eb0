#!/usr/bin/env python3
"""Signed orders through HTTP on loopback: the batch endpoint's throughput and submit-to-commit latency.

    python benchmarks/bench_api.py [--orders 30000] [--batch 500] [--connections 2] [--rate 5000]
                                   [--latency-seconds 10] [--block-time 250] [--index]

A real ``bastion node`` process (signed mode, ``--block-time`` 250 ms, ``--max-block-txs`` high enough
that blocks follow the clock rather than fill up, the per-sender rate limit lifted, no read models
unless ``--index``) on a free loopback port, a fresh chain of ``--accounts`` funded accounts and
the state-machine benchmark's three markets. Every envelope is signed beforehand with the SDK's
signing (``bastion.api.signing.sign_envelope``, EIP-712, microsecond nonces; in a process pool),
and every batch body is encoded to JSON beforehand, so the timed client only sends bytes.

Workload: limit orders round-robin over the markets and accounts, ~80% passive (a few ticks away
from the mid, both sides) and ~20% crossing (a tick through the mid), so the book grows and trades.

1. **Throughput**: all ``--orders`` envelopes posted to ``POST /v1/tx/batch`` in batches of
   ``--batch`` over ``--connections`` keep-alive connections as fast as the node answers.
   ``accepted_per_s``: orders / time until the last batch was answered (signature recovery,
   ``check_tx``, the mempool); ``committed_per_s``: orders / time until the block holding the last
   one was pushed on the WebSocket ``blocks`` channel (so it was in the log on disk).
2. **Latency**: batches of ``--latency-batch`` sent at ``--rate`` orders/s for ``--latency-seconds``;
   each order's latency runs from the moment its batch was sent to the moment the client received
   the ``blocks`` push of the block that holds it (blocks hold consecutive arrival numbers, and every
   batch answer gives each order's arrival). p50/p90/p99/max over every order.

Prints one JSON line per phase, with the load average before and after (the machine may be shared).
"""
from __future__ import annotations

import argparse
import bisect
import http.client
import json
import multiprocessing
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from eth_account import Account  # noqa: E402

from bastion.api.signing import sign_envelope  # noqa: E402
from bastion.client import Client  # noqa: E402
from bastion.core.timefmt import format_iso_ms  # noqa: E402

CHAIN = "bench-api"
MARKETS = (("BTC-USD", 100_000), ("ETH-USD", 4_000), ("SOL-USD", 200))  # as bench_state_machine: price_decimals 0


def key_of(i: int) -> str:
    return "0x" + f"{i + 1:064x}"


def genesis(addresses: list[str]) -> dict:
    return {
        "chain_id": CHAIN, "time": format_iso_ms(time.time_ns() // 1_000_000 // 1_000 * 1_000),
        "oracle": {"operators": ["0x" + "0a1".rjust(40, "0")], "min_sources": 1, "max_staleness_s": 3600,
                   "max_source_deviation": "0.05", "max_move_per_block": "0.05"},
        "markets": [{"ticker": t, "size_decimals": 4, "price_decimals": 0, "liquidity_tier": 0,
                     "maker_fee": "0.0001", "taker_fee": "0.0005", "oracle_price": str(mid)} for t, mid in MARKETS],
        "accounts": [{"address": a, "subaccounts": [{"number": 0, "usdc": "10000000"}]} for a in addresses],
    }


def order(n: int) -> dict:
    """Order number n (signed by account n % accounts)."""
    ticker, mid = MARKETS[n % 3]
    side = "buy" if (n // 3) % 2 == 0 else "sell"
    step = 1 + (n * 7919) % 20
    crossing = n % 5 == 0
    offset = (-1 if crossing else step) if side == "buy" else (1 if crossing else -step)
    price = mid - offset
    return {"type": "place_order", "subaccount": 0, "market": ticker, "side": side, "size": "0.01",
               "price": str(price), "client_id": n, "time_in_force": "gtc"}


def _sign_chunk(args: tuple[int, int, int, int]) -> list[dict]:
    start, stop, accounts, nonce_base = args
    out = []
    for n in range(start, stop):
        out.append(sign_envelope(key_of(n % accounts), CHAIN, order(n), nonce_base + n))
    return out


def presign(count: int, accounts: int, offset: int, nonce_base: int, workers: int) -> list[dict]:
    chunk = 1_000
    jobs = [(s, min(s + chunk, offset + count), accounts, nonce_base) for s in range(offset, offset + count, chunk)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return [e for part in pool.map(_sign_chunk, jobs) for e in part]


class BlockWatcher(threading.Thread):
    """Receives every ``blocks`` push: (receive time, cumulative transactions) per block."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.times: list[float] = []
        self.cumulative: list[int] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.changed = threading.Condition()

    def run(self) -> None:
        total = 0
        with Client(self.url) as client, client.subscribe({"channel": "blocks"}) as subscription:
            self.ready.set()
            while not self.stop.is_set():
                try:
                    block = subscription.recv(timeout=0.5)
                except TimeoutError:
                    continue
                except Exception:  # noqa: BLE001 - the node is gone (the end of the run)
                    return
                now = time.perf_counter()
                total += block["tx_count"]
                with self.changed:
                    self.times.append(now)
                    self.cumulative.append(total)
                    self.changed.notify_all()

    def commit_time(self, arrival: int) -> float | None:
        """When the block holding this arrival number was received (arrivals start at 0 on a fresh chain)."""
        index = bisect.bisect_right(self.cumulative, arrival)
        return self.times[index] if index < len(self.times) else None

    def wait_for(self, arrivals: int, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not self.cumulative or self.cumulative[-1] < arrivals:
                if not self.changed.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"only {self.cumulative[-1] if self.cumulative else 0} of {arrivals} committed")
            return self.times[bisect.bisect_left(self.cumulative, arrivals)]


def post_batches(port: int, bodies: list[bytes], connections: int, sent: list[float | None],
                 answers: list[dict | None], interval_s: float = 0.0) -> None:
    """Post every body to ``/v1/tx/batch`` over ``connections`` keep-alive connections, recording when
    each was sent and its answer. With ``interval_s``, batch i is sent at t0 + i * interval (or as soon
    as a connection is free, if the node answers more slowly than that)."""
    t0 = time.perf_counter()
    work: queue.Queue[int] = queue.Queue()
    for i in range(len(bodies)):
        work.put(i)

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                break
            delay = t0 + i * interval_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent[i] = time.perf_counter()
            connection.request("POST", "/v1/tx/batch", bodies[i], {"content-type": "application/json"})
            answers[i] = json.loads(connection.getresponse().read())
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--rate", type=int, default=5_000, help="offered orders/s in the latency phase")
    parser.add_argument("--latency-batch", type=int, default=250)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--block-time", type=int, default=250)
    parser.add_argument("--max-block-txs", type=int, default=50_000)
    parser.add_argument("--sign-workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--index", action="store_true", help="the node keeps read models (its indexer process)")
    parser.add_argument("--verify-threads", type=int, default=2, help="the node's --verify-threads")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()

    latency_orders = int(args.rate * args.latency_seconds)
    addresses = [Account.from_key(key_of(i)).address.lower() for i in range(args.accounts)]
    nonce_base = time.time_ns() // 1_000  # microseconds: the whole run must stay within the 10-minute window
    started = time.perf_counter()
    envelopes = presign(args.orders + latency_orders, args.accounts, 0, nonce_base, args.sign_workers)
    sign_seconds = time.perf_counter() - started
    data = args.dir or Path(tempfile.mkdtemp(prefix="bastion-bench-api-"))
    genesis_file = data / "genesis.json"
    genesis_file.write_text(json.dumps(genesis(addresses)))
    port = _free_port()
    command = [sys.executable, "-m", "bastion.cli.main", "node", "--data", str(data / "node"), "--genesis",
               str(genesis_file), "--port", str(port), "--block-time", str(args.block_time), "--max-block-txs",
               str(args.max_block_txs), "--rate-limit", "10000000", "--burst", "10000000",
               "--ip-rate-limit", "10000000", "--ip-burst", "10000000", "--quiet",
               "--verify-threads", str(args.verify_threads),
               "--read-models", "default" if args.index else "none"]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        watcher = BlockWatcher(url)
        watcher.start()
        watcher.ready.wait(10)

        # 1. throughput
        first = envelopes[:args.orders]
        bodies = [json.dumps({"txs": first[i:i + args.batch]}).encode() for i in range(0, len(first), args.batch)]
        sent: list[float | None] = [None] * len(bodies)
        answers: list[dict | None] = [None] * len(bodies)
        load_before = load()
        t0 = time.perf_counter()
        post_batches(port, bodies, args.connections, sent, answers)
        accepted_at = time.perf_counter()
        accepted = sum(a["accepted"] for a in answers if a)
        refused = [r for a in answers if a for r in a["results"] if r["status"] != "accepted"]
        committed_at = watcher.wait_for(accepted, 120)
        print(json.dumps({"phase": "throughput", "orders": args.orders, "batch": args.batch,
                          "connections": args.connections, "accepted": accepted, "refused": len(refused),
                          "refusal_codes": sorted({r["code"] for r in refused}),
                          "accepted_per_s": int(accepted / (accepted_at - t0)),
                          "committed_per_s": int(accepted / (committed_at - t0)),
                          "seconds_to_accept": round(accepted_at - t0, 2),
                          "seconds_to_commit": round(committed_at - t0, 2),
                          "block_time_ms": args.block_time, "indexer": args.index,
                          "verify_threads": args.verify_threads,
                          "presign_s": round(sign_seconds, 1),
                          "load_before": load_before, "load_after": load()}), flush=True)

        # 2. latency at an offered rate
        time.sleep(1.0)
        rest = envelopes[args.orders:]
        size = args.latency_batch
        bodies = [json.dumps({"txs": rest[i:i + size]}).encode() for i in range(0, len(rest), size)]
        sent = [None] * len(bodies)
        answers = [None] * len(bodies)
        load_before = load()
        post_batches(port, bodies, 4, sent, answers, interval_s=size / args.rate)
        last = max(r["arrival"] for a in answers if a for r in a["results"] if r["status"] == "accepted")
        watcher.wait_for(last + 1, 120)
        latencies = sorted(watcher.commit_time(r["arrival"]) - sent[i]
                           for i, a in enumerate(answers) if a for r in a["results"] if r["status"] == "accepted")
        behind = max(s - i * size / args.rate for i, s in enumerate(x - sent[0] for x in sent))
        print(json.dumps({"phase": "latency", "offered_per_s": args.rate, "batch": size, "orders": len(latencies),
                          "p50_ms": _ms(latencies, 0.50), "p90_ms": _ms(latencies, 0.90),
                          "p99_ms": _ms(latencies, 0.99), "max_ms": round(latencies[-1] * 1000, 1),
                          "sender_behind_schedule_ms": round(behind * 1000, 1), "block_time_ms": args.block_time,
                          "load_before": load_before, "load_after": load()}), flush=True)
        watcher.stop.set()
        watcher.join(2)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if args.dir is None:
            shutil.rmtree(data, ignore_errors=True)


def _ms(sorted_values: list[float], q: float) -> float:
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1000, 1)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    with Client(url) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the node exited with {process.returncode}")
            try:
                client.status()
                return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
    raise SystemExit("the node did not start")


if __name__ == "__main__":
    main()
