"""Crash replays through the real state machine (issue 3, "Proof"; the loss waterfall of issue 14).

Oracle prices: Binance SOL and ETH perpetual 15-minute candles from 2022-11-05 to 2022-11-13
(``tests/data/``), each candle replayed as four blocks 225 s apart through its open, its extremes
(low first on a down candle... high first, see ``candle_path``) and its close. SOL fell from about
33 to 9.4 (-70%), ETH from 1,600 to 1,080.

Accounts (seeded): 520 traders with 1,000-50,000 USDC, one or two positions each, long two times
out of three, at 1x to 15x, all opened at the first open price; one hedger holding the net opposite
of every market so genesis balances; three market makers that requote a five-level ladder on both
sides of every market each block (0.1% to 8% from the last oracle price, 25k to 400k USDC per
level) after cancelling their previous quotes. A 500,000 USDC cross insurance fund.

After every block: collateral conserved to the micro-USDC and long OI = short OI
(``check_invariants``), books uncrossed, no insurance fund negative, and every account still liquidatable was worked on
in that block: it was liquidated up to its block limits, deleveraged, or the book held nothing within
its fillable price (an hourly funding tick, which comes after the liquidation step, can make an
account liquidatable: the next block's scan covers it, and this check waits for it). The run prints
liquidations, fund balance, deleveraging and bad debt.

The CI test replays the three days around the collapse (Nov 7-9: 1,152 blocks); the slow test the
whole week (3,456 blocks).

The loss waterfall (``bastion.core.liquidation``) is checked in every block (``check_waterfall``): a
deleveraging or socialisation only after the backstop was asked for that position and could not
take it (its one-lot check recomputed from the event's inputs, or a partial takeover that stopped
at a limit); every ADL counterparty in profit at the oracle price and realising no loss on the
closed lots (quote versus the cost of those lots); no backstop ever deleveraged or liquidated.

A second crash, **May 2021** (the China ban, 2021-05-16..22), is built from the hourly BTC, ETH and
SOL series shipped in ``bastion/stress/data/history``: each hourly candle becomes twelve 5-minute
oracle steps along open -> adverse extreme -> other extreme -> close, linearly interpolated (the
finest resolution the hourly series allows without inventing wicks), with the makers' ladder thinned
to a tenth so that the book often cannot absorb a liquidation and the backstop is exercised. The CI
test replays May 18-20 (864 blocks) twice and compares the final state hashes (determinism); the
slow test the whole week.
"""
from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path

import pytest
from builders import BRIDGE, ORACLE, address
from waterfall_checks import check_waterfall

from bastion.core import liquidation
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import decode_message
from bastion.core.transition import apply_block, check_invariants
from bastion.core.units import format_decimal, parse_decimal_rounded
from bastion.core.timefmt import parse_iso_ms
from bastion.risk_model import is_liquidatable, notional
from bastion.core.margin import get_subaccount_risk

DATA = Path(__file__).parent / "data"
HISTORY = Path(__file__).parent.parent / "src" / "bastion" / "stress" / "data" / "history"
MARKETS = {  # ticker: (file, size_decimals, price_decimals, liquidity tier, max leverage used)
    "SOL-USD": (DATA / "crash_2022-11-08_SOLUSDT-PERP_15m.csv", 1, 3, 1, 15),
    "ETH-USD": (DATA / "crash_2022-11-08_ETHUSDT-PERP_15m.csv", 3, 2, 0, 15),
}
MAY_2021 = {
    "BTC-USD": (HISTORY / "crash_2021-05-19_BTCUSDT-PERP_1h.csv", 4, 1, 0, 20),
    "ETH-USD": (HISTORY / "crash_2021-05-19_ETHUSDT-PERP_1h.csv", 3, 2, 0, 20),
    "SOL-USD": (HISTORY / "crash_2021-05-19_SOLUSDT-PERP_1h.csv", 1, 3, 1, 10),
}
BLOCK_S = 225
HEDGER = address(0xE0)
MAKERS = (address(0xA0), address(0xB0), address(0xC0))
LADDER = ((10, 25_000), (30, 50_000), (100, 100_000), (300, 200_000), (800, 400_000))  # (bps, USDC per level)
TRADERS = 520


def load_candles(markets: dict = MARKETS) -> list[tuple[str, dict[str, tuple[str, str, str, str]]]]:
    """[(open time, {ticker: (open, high, low, close)})] for the timestamps every file has."""
    series: dict[str, dict[str, tuple[str, str, str, str]]] = {}
    for ticker, (path, *_rest) in markets.items():
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                series.setdefault(row["timestamp"], {})[ticker] = (row["open"], row["high"], row["low"], row["close"])
    return [(time, prices) for time, prices in sorted(series.items()) if len(prices) == len(markets)]


def candle_path(open_: str, high: str, low: str, close: str) -> list[str]:
    """Four oracle prices per candle: open, then the extreme against the move, the other, close."""
    return [open_, low, high, close] if float(close) >= float(open_) else [open_, high, low, close]


def expand(path: list[str], steps: int, price_decimals: int) -> list[str]:
    """``steps`` oracle prices along the candle path (``steps`` a multiple of 3): each of its three legs
    (open -> adverse extreme -> other extreme -> close) linearly interpolated on the tick grid."""
    if steps == len(path):
        return path
    ticks = [parse_decimal_rounded(p, price_decimals, field="price") for p in path]
    per_leg = steps // 3
    out = []
    for leg in range(3):
        start, end = ticks[leg], ticks[leg + 1]
        out += [start + (end - start) * (i + 1) // per_leg for i in range(per_leg)]
    return [format_decimal(t, price_decimals) for t in out]


def crash_genesis(first: dict[str, tuple[str, str, str, str]], start: str, markets: dict = MARKETS,
                  chain_id: str = "bastion-ftx-week", fund: str = "500000") -> dict:
    rng = random.Random(2022_11_08)
    prices = {t: parse_decimal_rounded(first[t][0], markets[t][2], field="price") for t in markets}
    net = Counter()
    accounts = []
    for i in range(TRADERS):
        collateral = rng.choice((1_000, 2_500, 5_000, 10_000, 25_000, 50_000))
        tickers = rng.sample(sorted(markets), rng.choice((1, 1, 2)))
        balance = collateral * 10**6
        positions = []
        for ticker in tickers:
            _, size_decimals, price_decimals, _, max_leverage = markets[ticker]
            leverage = rng.choice((1, 2, 3, 5, 8, 10, max_leverage))
            side = 1 if rng.random() < 2 / 3 else -1
            target = collateral * 10**6 * leverage // len(tickers)
            lots = target // notional(1, prices[ticker], size_decimals=size_decimals, price_decimals=price_decimals)
            if lots == 0:
                continue
            size = side * lots
            balance -= notional(size, prices[ticker], size_decimals=size_decimals, price_decimals=price_decimals)
            net[ticker] += size
            positions.append({"market": ticker, "size": format_decimal(size, size_decimals)})
        accounts.append({"address": address(0x10000 + i),
                         "subaccounts": [{"number": 0, "usdc": format_decimal(balance, 6), "positions": positions}]})
    hedge_balance = 200_000_000 * 10**6
    hedge_positions = []
    for ticker, size in sorted(net.items()):
        _, size_decimals, price_decimals, _, _ = markets[ticker]
        hedge_balance += notional(size, prices[ticker], size_decimals=size_decimals, price_decimals=price_decimals)
        hedge_positions.append({"market": ticker, "size": format_decimal(-size, size_decimals)})
    accounts.append({"address": HEDGER, "subaccounts": [
        {"number": 0, "usdc": format_decimal(hedge_balance, 6), "positions": hedge_positions}]})
    accounts += [{"address": maker, "subaccounts": [{"number": 0, "usdc": "20000000"}]} for maker in MAKERS]
    market_docs = [{"ticker": t, "size_decimals": sd, "price_decimals": pd, "liquidity_tier": tier,
                    "min_order_size": format_decimal(1, sd), "oracle_price": format_decimal(prices[t], pd)}
                   for t, (_, sd, pd, tier, _) in markets.items()]
    return {"chain_id": chain_id, "time": start, "bridge_operator": BRIDGE,
            "oracle": {"operators": [ORACLE], "min_sources": 1, "max_staleness_s": 600,
                       "max_source_deviation": "0.05", "max_move_per_block": "0.5"},
            "markets": market_docs, "insurance_funds": {"cross": fund}, "accounts": accounts}


class MakerQuotes:
    """Each maker cancels its quotes and requotes the ladder around the last oracle price (every
    level's size multiplied by ``depth``)."""

    def __init__(self, markets: dict = MARKETS, depth: float = 1.0) -> None:
        self.client_id = 0
        self.markets = markets
        self.depth = depth

    def txs(self, state) -> list[tuple[str, dict]]:
        out = []
        for maker in MAKERS:
            out.append((maker, {"type": "cancel_all", "subaccount": 0}))
            for ticker, (_, size_decimals, price_decimals, _, _) in self.markets.items():
                price = state.markets[ticker].oracle_price
                lot_value = notional(1, price, size_decimals=size_decimals, price_decimals=price_decimals)
                for bps, usdc in LADDER:
                    lots = max(1, int(usdc * self.depth) * 10**6 // lot_value)
                    for side, ticks in (("buy", price * (10_000 - bps) // 10_000),
                                        ("sell", -(-price * (10_000 + bps) // 10_000))):
                        self.client_id += 1
                        out.append((maker, {"type": "place_order", "subaccount": 0, "market": ticker, "side": side,
                                            "size": format_decimal(lots, size_decimals),
                                            "price": format_decimal(ticks, price_decimals), "order_type": "limit",
                                            "time_in_force": "gtc", "client_id": self.client_id}))
        return out


def run_crash(first_day: str, last_day: str, *, markets: dict = MARKETS, steps: int = 4, block_s: int = BLOCK_S,
              depth: float = 1.0, chain_id: str = "bastion-ftx-week", fund: str = "500000") -> dict:
    candles = [(t, p) for t, p in load_candles(markets) if first_day <= t[:10] <= last_day]
    state = build_state(crash_genesis(candles[0][1], candles[0][0], markets, chain_id, fund))
    quotes = MakerQuotes(markets, depth)
    totals = Counter()
    time_ms = parse_iso_ms(candles[0][0], field="time")
    min_fund = fund_start = state.insurance_funds["cross"]
    for _, prices in candles:
        paths = {t: expand(candle_path(*prices[t]), steps, markets[t][2]) for t in markets}
        for step in range(steps):
            time_ms += block_s * 1_000
            txs = [(ORACLE, {"type": "oracle_update", "prices": {t: paths[t][step] for t in markets}})]
            txs += quotes.txs(state)
            result = apply_block(state, time_ms, [(sender, decode_message(msg)) for sender, msg in txs])
            assert all(r["ok"] for r in result.results), [r for r in result.results if not r["ok"]][:3]
            check_invariants(state)
            assert all(fund >= 0 for fund in state.insurance_funds.values())
            check_liquidatable_accounts_were_worked_on(state, result.events)
            check_waterfall(state, result.events)
            for event in result.events:
                totals[event["type"]] += 1
                if event["type"] == "liquidation":
                    totals["liquidated_notional"] += abs(event["fill_quote"])
                    totals["liquidation_fees"] += max(event["insurance_delta"], 0)
                    totals["fund_payouts"] += max(-event["insurance_delta"], 0)
                elif event["type"] == "bad_debt":
                    totals["bad_debt_amount"] += event["amount"]
                elif event["type"] == "deleveraging":
                    totals["adl_loss"] += event["counterparty_loss"]
                elif event["type"] == "backstop_takeover":
                    totals["backstop_fund_paid"] += max(-event["fund_delta"], 0)
            inventory = sum(abs(notional(p.size, state.markets[t].oracle_price,
                                         size_decimals=state.markets[t].size_decimals,
                                         price_decimals=state.markets[t].price_decimals))
                            for key, sub in state.subaccounts.items() if liquidation.is_backstop(key[0])
                            for t, p in sub.positions.items())
            totals["backstop_peak"] = max(totals["backstop_peak"], inventory)
            min_fund = min(min_fund, state.insurance_funds["cross"])
            totals["blocks"] += 1
    assert state.state_hash == compute_state_hash_full(state)
    return {"blocks": totals["blocks"], "liquidation_fills": totals["liquidation"],
            "liquidated_notional_usdc": totals["liquidated_notional"] // 10**6,
            "liquidation_fees_usdc": totals["liquidation_fees"] // 10**6,
            "fund_payouts_usdc": totals["fund_payouts"] // 10**6,
            "incomplete_liquidations": totals["liquidation_incomplete"],
            "backstop_takeovers": totals["backstop_takeover"], "backstop_refusals": totals["backstop_refused"],
            "backstop_fund_paid_usdc": totals["backstop_fund_paid"] // 10**6,
            "backstop_unwind_fills": totals["backstop_unwind"], "backstop_peak_usdc": totals["backstop_peak"] // 10**6,
            "deleveragings": totals["deleveraging"], "adl_loss_to_traders_usdc": totals["adl_loss"] // 10**6,
            "socialised_bad_debt_usdc": totals["bad_debt_amount"] // 10**6,
            "insurance_fund_usdc": (fund_start // 10**6, min_fund // 10**6, state.insurance_funds["cross"] // 10**6),
            "withdrawal_pauses": totals["withdrawals_paused"], "state_hash": state.state_hash}


def check_liquidatable_accounts_were_worked_on(state, events: list[dict]) -> None:
    """An account still liquidatable after the block was liquidated, taken over, deleveraged or found
    no bid (ask) within its fillable price; otherwise the book could have taken it and the engine did
    not. The backstops are never liquidated (their margin is the fund)."""
    worked = {(e["owner"], e["number"]) for e in events
              if e["type"] in ("liquidation", "liquidation_incomplete", "deleveraging", "bad_debt", "backstop_takeover",
                               "backstop_refused")}
    for key, sub in state.subaccounts.items():
        moved = any(state.markets[t].scanned != (state.markets[t].oracle_price, state.markets[t].funding_index,
                                                 state.params_epoch) for t in sub.positions)
        if not sub.positions or moved or liquidation.is_backstop(key[0]):
            continue
        net_collateral, _, maintenance = get_subaccount_risk(state, sub)
        if is_liquidatable(net_collateral, maintenance):
            assert key in worked, f"{key} liquidatable (TNC {net_collateral} < MMR {maintenance}) and untouched"
    for event in events:
        if event["type"] == "liquidation_incomplete" and event["reason"] in ("no_liquidity", "empty_book"):
            book = state.markets[event["market"]].book
            position = state.subaccounts[(event["owner"], event["number"])].positions.get(event["market"])
            if position is None:
                continue
            if event["reason"] == "empty_book":
                assert (book.best_bid() if position.size > 0 else book.best_ask()) is None, event
            elif position.size > 0:  # a long is sold: no bid at or above the limit may remain
                best = book.best_bid()
                assert best is None or best < event["fillable_price"], event
            else:
                best = book.best_ask()
                assert best is None or best > event["fillable_price"], event


def test_ftx_collapse_three_days() -> None:
    report = run_crash("2022-11-07", "2022-11-09")
    print(f"\nFTX collapse, Nov 7-9 2022: {report}")
    assert report["blocks"] == 3 * 96 * 4
    assert report["liquidation_fills"] > 100 and report["liquidated_notional_usdc"] > 1_000_000


@pytest.mark.slow
def test_ftx_week() -> None:
    report = run_crash("2022-11-05", "2022-11-13")
    print(f"\nFTX week, Nov 5-13 2022: {report}")
    assert report["blocks"] == 864 * 4
    assert report["liquidation_fills"] > 100


MAY = {"markets": MAY_2021, "steps": 12, "block_s": 300, "depth": 0.1, "chain_id": "bastion-may-2021"}


def test_may_2021_crash_days_from_the_hourly_series_exercise_the_backstop_deterministically() -> None:
    report = run_crash("2021-05-18", "2021-05-20", **MAY)
    print(f"\nMay 2021 crash, May 18-20: {report}")
    assert report["blocks"] == 3 * 24 * 12
    assert report["liquidation_fills"] > 100
    assert report["backstop_takeovers"] > 0 and report["backstop_unwind_fills"] > 0
    again = run_crash("2021-05-18", "2021-05-20", **MAY)
    assert again["state_hash"] == report["state_hash"]


@pytest.mark.slow
def test_may_2021_week() -> None:
    report = run_crash("2021-05-16", "2021-05-22", **MAY)
    print(f"\nMay 2021 week: {report}")
    assert report["blocks"] == 7 * 24 * 12
    assert report["backstop_takeovers"] > 0
