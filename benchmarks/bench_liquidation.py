#!/usr/bin/env python3
"""The liquidation step after a 20% oracle drop (issue 3's benchmark).

    python benchmarks/bench_liquidation.py [--subaccounts 100000] [--backstop] [--profile] [--check]
    python benchmarks/bench_liquidation.py --mass-bankruptcy [--bankrupt 1000] [--holders 10000]

Workload: 20 markets at 100.00 (large tier: IMF 5%, MMF 3%), ``--subaccounts`` subaccounts with 5
positions of 10 units each (1,000 USDC of notional). Subaccounts come in pairs holding the same
five markets, one long and one short, so every market balances; a market is held by a quarter of
them. Ten market makers rest 1,000 bids each in M00 from 79.99 down to 79.95, 10 units per order.
The longs that hold M00 and are meant to fail (10% of all subaccounts) have 340 USDC of
collateral, everyone else 1,000 USDC. One warm-up block scans everyone (all healthy).

Timed: ``liquidation.liquidate`` alone, in the block where M00's oracle falls 20% (100.00 to
80.00): the scan (the holders of M00 only: the other three quarters hold no position there and are
not valued), ranking, and the liquidation of every failing account against the book (each sells
its M00 position, in one or two fills, and is healthy again). Prints one JSON line: seconds (wall
clock) and cpu_seconds (this process's CPU time: the figure to read on a shared, loaded machine),
subaccounts valued, liquidated, fills, fund, peak RSS.

``--backstop``: the loss waterfall's second rung instead of the book. The failing longs have only
150 USDC of collateral, so the drop leaves them bankrupt (TNC 150 - 200 = -50), the makers rest no
bids, and the cross fund (50M USDC) with ``backstop_max_notional`` 20M lets the backstop take over
every position of every failing account at its bankruptcy price (no book in any market: 50,000
takeovers, the fund paying the 50 USDC deficit of each account; the failing accounts all hold M00,
M04, M08, M12 and M16, so 8M USDC of inventory in M00 and 10M in each of the other four). Timed as
above; the backstop's first unwind (into the empty books) is included.

``--mass-bankruptcy``: the waterfall's last rungs, a liveness check (no block may take seconds).
One market at 100.00; ``--bankrupt`` longs of 10 units with 150 USDC of collateral and
``--holders`` shorts sharing the opposite side equally (1 unit each by default) with 50 USDC of
collateral; no bids, an empty fund (0 USDC) and ``backstop_max_notional`` 0, so after the drop to
80.00 every long is bankrupt (TNC -50), the book is empty and the backstop may take nothing: every
long is deleveraged against the shorts, all in profit (``--holders-entry 70``: the shorts entered
at 70.00, so they are losing, nobody may be deleveraged and every long is socialised pro rata
against all of them instead). Blocks are applied (everything after the
oracle update is ``end_block``) until no account is liquidatable; each block's end-of-block CPU
time is measured. Prints the worst block, the total, the number of blocks, the deleveragings and
the bound parameters used (``--max-liquidations``, ``--max-deleveragings``: genesis
``liquidation`` keys, omitted when not given, so the script also runs on a tree without them).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bastion.core import liquidation, margin, oracle
from bastion.core.genesis import build_state
from bastion.core.messages import OracleUpdate, PlaceOrder
from bastion.core.transition import apply_block, apply_tx, begin_block, check_invariants, end_block

OPERATOR = "0x" + "0a1".rjust(40, "0")
MARKETS = [f"M{i:02d}-USD" for i in range(20)]
MAKERS = 10


def owner(i: int) -> str:
    return "0x" + f"{i + 0x1000:x}".rjust(40, "0")


def maker(i: int) -> str:
    return "0x" + f"{i + 0xA00:x}".rjust(40, "0")


def make_genesis(n_subaccounts: int, backstop: bool = False) -> tuple[dict, int]:
    """The genesis, and how many subaccounts are set up to fail (bankrupt after the drop with ``backstop``)."""
    accounts = []
    failing = 0
    target_failing = n_subaccounts // 10
    for pair in range(n_subaccounts // 2):
        tickers = [MARKETS[(pair % 20 + 4 * k) % 20] for k in range(5)]
        for side in (1, -1):
            usdc = 1_000
            if side == 1 and MARKETS[0] in tickers and failing < target_failing:
                usdc, failing = (150 if backstop else 340), failing + 1
            balance = usdc - side * 5 * 1_000  # five positions of 10 units at 100.00
            accounts.append({"address": owner(2 * pair + (side < 0)), "subaccounts": [{
                "number": 0, "usdc": str(balance),
                "positions": [{"market": t, "size": str(10 * side)} for t in tickers]}]})
    accounts += [{"address": maker(i), "subaccounts": [{"number": 0, "usdc": "10000000"}]} for i in range(MAKERS)]
    genesis = {
        "chain_id": "bench-liquidation", "time": "2026-01-01T00:00:00Z",
        "oracle": {"operators": [OPERATOR], "min_sources": 1, "max_staleness_s": 3600,
                   "max_source_deviation": "0.05", "max_move_per_block": "0.5"},
        "liquidity_tiers": [{"id": 0, "name": "large", "initial_margin": "0.05", "maintenance_fraction": "0.6",
                             "oi_lower_cap": "0", "oi_upper_cap": "0", "impact_notional": "10000"}],
        "markets": [{"ticker": t, "size_decimals": 0, "price_decimals": 2, "liquidity_tier": 0,
                     "oracle_price": "100"} for t in MARKETS],
        "insurance_funds": {"cross": "50000000" if backstop else "1000000"},
        "accounts": accounts,
    }
    if backstop:
        genesis["liquidation"] = {"backstop_max_notional": "20000000"}
    return genesis, failing


def mass_bankruptcy_genesis(bankrupt: int, holders: int, liquidation_params: dict | None = None,
                            holders_entry: int = 100) -> dict:
    """The ``--mass-bankruptcy`` genesis (see the module docstring): ``bankrupt`` longs of 10 units,
    ``holders`` shorts sharing ``10 * bankrupt`` units as evenly as possible (the first ones one more),
    entered at ``holders_entry`` USDC (below 80: losing after the drop, so nobody can be deleveraged
    and every long is socialised)."""
    total = 10 * bankrupt
    if holders > total:
        raise SystemExit("--holders may be at most 10 x --bankrupt (each short holds at least one unit)")
    accounts = [{"address": owner(i), "subaccounts": [{"number": 0, "usdc": str(150 - 1_000),
                                                       "positions": [{"market": MARKETS[0], "size": "10"}]}]}
                for i in range(bankrupt)]
    for j in range(holders):
        units = total // holders + (j < total % holders)
        accounts.append({"address": owner(bankrupt + j), "subaccounts": [{
            "number": 0, "usdc": str(50 * units + holders_entry * units),
            "positions": [{"market": MARKETS[0], "size": str(-units), "entry_price": str(holders_entry)}]}]})
    return {
        "chain_id": "bench-liquidation", "time": "2026-01-01T00:00:00Z",
        "oracle": {"operators": [OPERATOR], "min_sources": 1, "max_staleness_s": 3600,
                   "max_source_deviation": "0.05", "max_move_per_block": "0.5"},
        "liquidity_tiers": [{"id": 0, "name": "large", "initial_margin": "0.05", "maintenance_fraction": "0.6",
                             "oi_lower_cap": "0", "oi_upper_cap": "0", "impact_notional": "10000"}],
        "markets": [{"ticker": MARKETS[0], "size_decimals": 0, "price_decimals": 2, "liquidity_tier": 0,
                     "oracle_price": "100"}],
        "insurance_funds": {"cross": "0"},
        "liquidation": {"backstop_max_notional": "0", **(liquidation_params or {})},
        "accounts": accounts,
    }


def run_mass_bankruptcy(args) -> None:
    bounds = {}
    if args.max_liquidations is not None:
        bounds["max_liquidations_per_block"] = args.max_liquidations
    if args.max_deleveragings is not None:
        bounds["max_deleveragings_per_block"] = args.max_deleveragings
    state = build_state(mass_bankruptcy_genesis(args.bankrupt, args.holders, bounds, args.holders_entry))
    start_ms = state.time_ms
    apply_block(state, start_ms + 1_000, [])  # warm-up: everyone healthy
    block_cpu: list[float] = []
    deleveragings = bad_debts = 0
    for block in range(1, 10_000):
        events: list[dict] = []
        begin_block(state, start_ms + 1_000 * (block + 1), events)
        if block == 1:
            assert apply_tx(state, OPERATOR, OracleUpdate(prices={MARKETS[0]: "80"}), events)["ok"]
        cpu_started = time.process_time()
        end_block(state, events)
        block_cpu.append(time.process_time() - cpu_started)
        deleveragings += sum(e["type"] == "deleveraging" for e in events)
        bad_debts += sum(e["type"] == "bad_debt" for e in events)
        if not state.liquidation_watch:
            break
    if args.check:
        check_invariants(state)
    print(json.dumps({
        "case": "mass_bankruptcy", "bankrupt": args.bankrupt, "holders": args.holders,
        "holders_entry": args.holders_entry, **bounds,
        "blocks": len(block_cpu), "worst_block_cpu_seconds": round(max(block_cpu), 3),
        "total_cpu_seconds": round(sum(block_cpu), 3), "deleveragings": deleveragings, "bad_debt_events": bad_debts,
        "still_watched": len(state.liquidation_watch), "bad_debt_usdc": state.bad_debt.get("cross", 0) / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subaccounts", type=int, default=100_000)
    parser.add_argument("--backstop", action="store_true", help="bankrupt accounts, no bids: the backstop takes over")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--check", action="store_true",
                        help="check invariants and that every failing account was fixed")
    parser.add_argument("--mass-bankruptcy", action="store_true",
                        help="bankrupt longs beyond the backstop's limits: ADL")
    parser.add_argument("--bankrupt", type=int, default=1_000)
    parser.add_argument("--holders", type=int, default=10_000)
    parser.add_argument("--holders-entry", type=int, default=100, help="the shorts' entry price (70: socialisation)")
    parser.add_argument("--max-liquidations", type=int, default=None)
    parser.add_argument("--max-deleveragings", type=int, default=None)
    args = parser.parse_args()
    if args.mass_bankruptcy:
        run_mass_bankruptcy(args)
        return

    genesis, failing = make_genesis(args.subaccounts, args.backstop)
    state = build_state(genesis)
    start_ms = state.time_ms
    # warm-up block: the first scan values everyone; then the makers' bids
    apply_block(state, start_ms + 1_000, [])
    bids = []
    for i in range(0 if args.backstop else MAKERS):
        for k in range(1_000):
            cents = 7_999 - (i * 1_000 + k) // 2_000  # 79.99 down to 79.95, 2,000 orders per price
            bids.append((maker(i), PlaceOrder(subaccount=0, market=MARKETS[0], side="buy", size="10",
                                              price=f"{cents // 100}.{cents % 100:02d}", order_type="limit",
                                              time_in_force="gtc", client_id=k)))
    result = apply_block(state, start_ms + 2_000, bids)
    assert all(r["ok"] for r in result.results), [r for r in result.results if not r["ok"]][:2]

    # the crash block: everything before the liquidation step, untimed
    events: list[dict] = []
    begin_block(state, start_ms + 3_000, events)
    drop = OracleUpdate(prices={MARKETS[0]: "80"})
    assert apply_tx(state, OPERATOR, drop, events)["ok"]
    oracle.update_oracle_prices(state, events)
    liquidation.settle_final_markets(state, events)
    state.dirty.clear()  # as after the previous commit: only the moved market's holders are candidates
    candidates = len(liquidation._candidates(state))
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    started, cpu_started = time.perf_counter(), time.process_time()
    liquidation.liquidate(state, events)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    liquidated = {(e["owner"], e["number"]) for e in events if e["type"] in ("liquidation", "backstop_takeover")}
    report = {
        "subaccounts": args.subaccounts, "positions": 5 * args.subaccounts, "set_to_fail": failing,
        "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3), "candidates_valued": candidates,
        "liquidated": len(liquidated),
        "liquidation_fills": sum(e["type"] == "liquidation" for e in events),
        "backstop_takeovers": sum(e["type"] == "backstop_takeover" for e in events),
        "deleveragings": sum(e["type"] == "deleveraging" for e in events),
        "backstop_inventory_usdc": sum(abs(p.size) * state.markets[t].oracle_price // 100
                                       for key, sub in state.subaccounts.items() if liquidation.is_backstop(key[0])
                                       for t, p in sub.positions.items()),
        "insurance_fund_usdc": state.insurance_funds["cross"] / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    if args.check:
        check_invariants(state)
        still = [key for key in liquidated
                 if margin.get_subaccount_risk(state, state.subaccounts[key])[0]
                 < margin.get_subaccount_risk(state, state.subaccounts[key])[2]]
        report["still_liquidatable_after"] = len(still)
        report["invariants"] = "hold"
    print(json.dumps(report))


if __name__ == "__main__":
    main()
