#!/usr/bin/env python3
"""The stress fast path (issue 6's benchmark): account-steps per second, and the default gate sweep.

    python benchmarks/bench_stress.py [--accounts 10000] [--scenarios 1000] [--throughput 20]

Workload: a seeded state (seed 6) with three markets, BTC-USD (large-cap), ETH-USD (mid-cap) and
SOL-USD (small-cap), and ``--accounts`` subaccounts with one to three positions each at 1x to 20x
leverage, long two times out of three, all at the oracle price, plus one hedger holding the net
opposite so that genesis balances; a 1,000,000 USDC cross insurance fund.

Two figures, one JSON line:

* ``account_steps_per_s``: ``run_fast_path`` alone (price paths built beforehand) on the first
  ``--throughput`` jump-diffusion scenarios of the default gate set (1,440 one-minute steps each),
  counting accounts x steps;
* ``sweep_seconds``: the wall time of the first ``--scenarios`` scenarios of the default gate set
  (``run_sweep``: paths, engine, results) and the report; 1,000 is the whole gate sweep.

BLAS runs on one thread (the figure is per core; a sweep splits across processes by scenario range).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bastion.core.genesis import build_state  # noqa: E402
from bastion.stress import default_scenario_set, extract_inputs  # noqa: E402
from bastion.stress.engine import prepare, run_fast_path, run_sweep  # noqa: E402
from bastion.stress.paths import build_path  # noqa: E402
from bastion.stress.report import build_report  # noqa: E402

MARKETS = {  # ticker: (size_decimals, price_decimals, tier, oracle price)
    "BTC-USD": (4, 1, 0, 50_000),
    "ETH-USD": (3, 2, 1, 3_000),
    "SOL-USD": (1, 3, 2, 150),
}


def owner(i: int) -> str:
    return "0x" + f"{i + 0x1000:x}".rjust(40, "0")


def make_genesis(accounts: int) -> dict:
    rng = random.Random(6)
    net = {t: 0 for t in MARKETS}
    docs = []
    for i in range(accounts):
        collateral = rng.choice((1_000, 2_500, 5_000, 10_000, 50_000))
        tickers = rng.sample(sorted(MARKETS), rng.choice((1, 1, 2, 3)))
        balance = collateral * 10**6
        positions = []
        for ticker in tickers:
            size_decimals, price_decimals, _, price = MARKETS[ticker]
            leverage = rng.choice((1, 2, 3, 5, 8, 10, 15, 20))
            side = 1 if rng.random() < 2 / 3 else -1
            lots = collateral * leverage * 10**size_decimals // (price * len(tickers))
            if lots == 0:
                continue
            balance -= side * lots * price * 10**(6 - size_decimals)
            net[ticker] += side * lots
            positions.append({"market": ticker, "size": _decimal(side * lots, size_decimals)})
        docs.append({"address": owner(i), "subaccounts": [{"number": 0, "usdc": _decimal(balance, 6),
                                                           "positions": positions}]})
    hedge_balance = 10**9 * 10**6
    hedge = []
    for ticker, size in net.items():
        size_decimals, _, _, price = MARKETS[ticker]
        hedge_balance += size * price * 10**(6 - size_decimals)
        if size:
            hedge.append({"market": ticker, "size": _decimal(-size, size_decimals)})
    docs.append({"address": owner(accounts), "subaccounts": [{"number": 0, "usdc": _decimal(hedge_balance, 6),
                                                              "positions": hedge}]})
    return {"chain_id": "bench-stress", "time": "2026-01-01T00:00:00Z",
            "markets": [{"ticker": t, "size_decimals": sd, "price_decimals": pd, "liquidity_tier": tier,
                         "oracle_price": str(price)} for t, (sd, pd, tier, price) in MARKETS.items()],
            "insurance_funds": {"cross": "1000000"}, "accounts": docs}


def _decimal(units: int, decimals: int) -> str:
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    return f"{sign}{whole}.{str(frac).rjust(decimals, '0')}" if decimals > 0 else f"{sign}{whole}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--scenarios", type=int, default=1_000, help="first N scenarios of the gate set")
    parser.add_argument("--throughput", type=int, default=20, help="jump-diffusion scenarios timed alone")
    args = parser.parse_args()
    state = build_state(make_genesis(args.accounts))
    inputs = extract_inputs(state)
    scenario_set = default_scenario_set()
    scenarios = scenario_set.scenarios()

    jump = [s for s in scenarios if s.kind == "jump_diffusion"][:args.throughput]
    paths = [build_path(s, inputs, scenario_set) for s in jump]
    prepared = prepare(inputs)
    started = time.perf_counter()
    liquidations = sum(run_fast_path(prepared, s, p, scenario_set.engine).liquidations for s, p in zip(jump, paths))
    engine_seconds = time.perf_counter() - started
    account_steps = inputs.account_count * sum(p.steps for p in paths)

    started = time.perf_counter()
    count = min(args.scenarios, len(scenarios))
    results = run_sweep(inputs, scenario_set, indices=range(count))
    sweep_seconds = time.perf_counter() - started
    report = build_report(inputs, scenario_set, results) if count == len(scenarios) else None
    sweep_account_steps = inputs.account_count * sum(r.steps for r in results)
    print(json.dumps({
        "accounts": inputs.account_count, "markets": inputs.market_count,
        "throughput_scenarios": len(jump), "account_steps": account_steps,
        "engine_seconds": round(engine_seconds, 3),
        "account_steps_per_s": round(account_steps / engine_seconds),
        "throughput_liquidations": liquidations,
        "sweep_scenarios": count, "sweep_account_steps": sweep_account_steps,
        "sweep_seconds": round(sweep_seconds, 3),
        "sweep_account_steps_per_s": round(sweep_account_steps / sweep_seconds),
        "report_hash": report.report_hash if report else None,
        "verdict": report.document["verdict"]["passed"] if report else None,
    }))


if __name__ == "__main__":
    main()
