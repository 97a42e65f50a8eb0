#!/usr/bin/env python3
"""Whole-state-machine throughput: margin checks, fees, events and a state hash per block.

    python benchmarks/bench_state_machine.py [--ops 1000000] [--block 1000] [--accounts 1000] [--profile]
                                             [--maker-rewards]
    BASTION_PATH=build/compiled python benchmarks/bench_state_machine.py   # the mypyc build (build_compiled.py)

Workload: the shape of the external order-book comparison harness's workload (fixed seed; ~70% passive limit orders
near the mid, ~20% cancels of live orders, ~10% crossing limit orders whose remainder rests), spread over three markets
(BTC, ETH, SOL) and ``--accounts`` funded accounts, in blocks of ``--block`` messages, each block
also carrying one oracle update per market at that market's current mid. The stream is generated
before timing (a plain price-time book tracks which orders are live); messages are typed (decoding
JSON is the API's job). Timed: ``apply_block`` for every block, i.e. begin_block, every message
(validation, placement margin, matching with per-fill margin checks for both sides, fees, events),
end_block (oracle aggregation, premium sampling, funding) and the incremental state hash; each
transaction spends its sender's nonce as in a node's blocks (``--no-nonces``: blocks without nonces).
Prints one JSON line: ops, seconds and orders/s (wall clock; also per CPU second of the process),
fills, rejections, peak RSS, final state hash, and whether the core was the compiled build
(``BASTION_PATH``, default this checkout's ``src/``).
``--maker-rewards``: the genesis turns maker rewards on (``MAKER_REWARDS``: 20% of the fees to the pool, a
sample of every book every ``--sample-interval`` blocks, 10 by default as in the protocol's defaults, 1
the worst case; epochs of ``--epoch-blocks``, 100 by default).
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("BASTION_PATH") or str(Path(__file__).resolve().parents[1] / "src"))

import bastion.core.orders
from bastion.core.book import BUY, SELL, Book, Order
from bastion.core.genesis import build_state
from bastion.core.messages import CancelOrder, OracleUpdate, PlaceOrder
from bastion.core.transition import apply_block, check_invariants

MARKETS = (("BTC-USD", 100_000), ("ETH-USD", 4_000), ("SOL-USD", 200))  # ticker, start mid in ticks (price_decimals 0)
OPERATOR = "0x" + "0a1".rjust(40, "0")


def account(i: int) -> str:
    return "0x" + f"{i + 1:x}".rjust(40, "0")


# maker rewards on (bastion.core.maker_rewards): the --maker-rewards run; --sample-interval sets how often
MAKER_REWARDS = {"epoch_blocks": 100, "sample_interval_blocks": 10, "band": "0.01", "min_rest_blocks": 1,
                 "pool_share": "0.2", "max_share_per_maker": "0.1", "volatility_slope": "100",
                 "max_volatility_weight": "5"}


def make_genesis(n_accounts: int, maker_rewards: bool = False, sample_interval: int = 10,
                 epoch_blocks: int = 100) -> dict:
    extra = {"maker_rewards": {**MAKER_REWARDS, "sample_interval_blocks": sample_interval,
                               "epoch_blocks": epoch_blocks}} if maker_rewards else {}
    return {**extra,
        "chain_id": "bench", "time": "2026-01-01T00:00:00Z",
        "oracle": {"operators": [OPERATOR], "min_sources": 1, "max_staleness_s": 3600,
                   "max_source_deviation": "0.05", "max_move_per_block": "0.05"},
        "markets": [{"ticker": t, "size_decimals": 4, "price_decimals": 0, "liquidity_tier": 0,
                     "maker_fee": "0.0001", "taker_fee": "0.0005", "oracle_price": str(mid)} for t, mid in MARKETS],
        "accounts": [{"address": account(i), "subaccounts": [{"number": 0, "usdc": "10000000"}]}
                     for i in range(n_accounts)],
    }


def generate(n_ops: int, n_accounts: int, block_size: int, seed: int = 42) -> list[list[tuple[str, object]]]:
    """Blocks of (sender, message): the workload shape, round-robin over the three markets."""
    rng = random.Random(seed)
    books = {t: Book() for t, _ in MARKETS}
    mids = {t: mid for t, mid in MARKETS}
    live: dict[str, list[int]] = {t: [] for t, _ in MARKETS}
    where: dict[str, dict[int, int]] = {t: {} for t, _ in MARKETS}
    blocks, txs = [], []
    next_id = 1
    for i in range(n_ops):
        ticker = MARKETS[i % 3][0]
        book, ids, pos = books[ticker], live[ticker], where[ticker]
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            mids[ticker] = (bid + ask) // 2
        mid = mids[ticker]
        u = rng.random()
        if 0.70 <= u < 0.90 and ids:
            oid = ids[rng.randrange(len(ids))]
            while oid not in book:  # drop ids the book has filled meanwhile
                _remove(ids, pos, oid)
                if not ids:
                    break
                oid = ids[rng.randrange(len(ids))]
            if ids:
                book.remove(oid)
                _remove(ids, pos, oid)
                txs.append((account(oid % n_accounts), CancelOrder(subaccount=0, client_id=oid)))
                if len(txs) == block_size:
                    blocks.append(txs)
                    txs = []
                continue
        side = BUY if rng.random() < 0.5 else SELL
        oid, next_id = next_id, next_id + 1
        if u < 0.90:
            price = (mid - 1 - min(int(rng.expovariate(0.1)), 199) if side == BUY
                     else mid + 1 + min(int(rng.expovariate(0.1)), 199))
            if side == BUY and ask is not None:
                price = min(price, ask - 1)
            if side == SELL and bid is not None:
                price = max(price, bid + 1)
            qty = rng.randint(1, 100)
        else:
            opposite = ask if side == BUY else bid
            if opposite is None:
                opposite = mid
            price = opposite + rng.randint(0, 3) if side == BUY else opposite - rng.randint(0, 3)
            qty = rng.randint(100, 700)
        filled, _ = book.match(side, price, qty)
        if filled < qty:
            book.add(Order(oid, side, price, qty - filled))
            pos[oid] = len(ids)
            ids.append(oid)
        txs.append((account(oid % n_accounts), PlaceOrder(
            subaccount=0, market=ticker, side="buy" if side == BUY else "sell", size=str(qty), price=str(price),
            client_id=oid)))
        if len(txs) == block_size:
            blocks.append(txs)
            txs = []
    if txs:
        blocks.append(txs)
    # one oracle update per market per block, at the market mid seen by the generator at that point
    return [[(OPERATOR, OracleUpdate(prices={t: str(mids[t]) for t, _ in MARKETS}))] + b for b in blocks]


def block_nonces(blocks: list[list[tuple[str, object]]]) -> list[list[int]]:
    """Each transaction's nonce, as a node passes them (spent in the state): per sender 1, 2, 3..."""
    last: dict[str, int] = {}
    out = []
    for txs in blocks:
        nonces = []
        for sender, _ in txs:
            last[sender] = last.get(sender, 0) + 1
            nonces.append(last[sender])
        out.append(nonces)
    return out


def _remove(ids: list[int], pos: dict[int, int], oid: int) -> None:
    i = pos.pop(oid)
    last = ids.pop()
    if last != oid:
        ids[i] = last
        pos[last] = i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--block", type=int, default=1_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the timed part")
    parser.add_argument("--check", action="store_true", help="check conservation/OI/book invariants at the end")
    parser.add_argument("--maker-rewards", action="store_true",
                        help="maker rewards on (MAKER_REWARDS): sample every book every --sample-interval blocks")
    parser.add_argument("--sample-interval", type=int, default=10,
                        help="with --maker-rewards: sample every N blocks (default 10, the protocol's default; "
                             "1 is the worst case)")
    parser.add_argument("--epoch-blocks", type=int, default=100, help="with --maker-rewards: the epoch length")
    parser.add_argument("--no-nonces", action="store_true",
                        help="blocks without nonces (no replay protection in the state, as scenario files)")
    args = parser.parse_args()

    blocks = generate(args.ops, args.accounts, args.block)
    nonces = None if args.no_nonces else block_nonces(blocks)
    state = build_state(make_genesis(args.accounts, args.maker_rewards, args.sample_interval, args.epoch_blocks))
    start_ms = state.time_ms
    gc.collect()
    profiler = cProfile.Profile() if args.profile else None
    fills = rejected = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for height, txs in enumerate(blocks, start=1):
        result = apply_block(state, start_ms + height * 250, txs, None if nonces is None else nonces[height - 1])
        rejected += sum(not r["ok"] for r in result.results)
        fills += sum(e["type"] == "fill" for e in result.events)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - cpu0  # steadier than wall time on a shared machine
    if args.check:
        check_invariants(state)
    n_msgs = sum(len(b) for b in blocks)
    report = {
        "benchmark": "state_machine", "ops": args.ops, "messages_incl_oracle": n_msgs, "blocks": len(blocks),
        "accounts": args.accounts, "seconds": round(seconds, 3), "orders_per_s": round(args.ops / seconds),
        "cpu_seconds": round(cpu_seconds, 3), "orders_per_cpu_s": round(args.ops / cpu_seconds),
        "fills": fills, "rejected": rejected, "resting_orders": sum(len(m.book) for m in state.markets.values()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "state_hash": state.state_hash, "python": sys.version.split()[0],
        "compiled": not bastion.core.orders.__file__.endswith(".py"), "nonces": nonces is not None,
        "maker_rewards": args.maker_rewards, "sample_interval": args.sample_interval if args.maker_rewards else None,
        "epoch_blocks": args.epoch_blocks if args.maker_rewards else None,
        "maker_rewards_paid": state.maker_rewards.paid_total if args.maker_rewards else 0,
    }
    print(json.dumps(report))
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
