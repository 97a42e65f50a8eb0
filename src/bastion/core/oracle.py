"""Oracle submissions and per-block aggregation (DESIGN.md section 6).

Operators submit prices (rounded half-even to the tick grid; the raw text is kept in the event).
At the end of every block each market's price becomes the lower median of the fresh submissions
(age <= ``max_staleness``) that lie within ``max_source_deviation`` of the median of all fresh ones.
With fewer than ``min_sources`` such submissions, or when they are not a strict majority of the fresh
ones (two sources that disagree: no way to tell which is right), the market is *stale*: its price is kept, it
accepts only risk-reducing orders and (liquidation issue) is never liquidated. A move larger than
``max_move_per_block`` (but at least one tick) is clamped and flagged, so a jump takes several
blocks to arrive. A settled market's price stays its settlement price (submissions are still
accepted and recorded, but no longer aggregated).
Genesis counts as a submission of the initial price by every operator at genesis time.
"""
from __future__ import annotations

from typing import Any

from bastion.core.accounts import get_market
from bastion.core.errors import ProtocolError
from bastion.core.funding import median_low
from bastion.core.messages import OracleUpdate
from bastion.core.state import State
from bastion.core.units import PPM, parse_decimal_rounded, ppm_of_down

Events = list[dict[str, Any]]


def oracle_update(state: State, sender: str, msg: OracleUpdate, events: Events) -> dict[str, Any]:
    """Record an operator's prices (rounded to each market's tick); the oracle price moves at the end of
    the block (``update_oracle_prices``). Refusals: ``not_oracle_operator``, ``unknown_market``,
    ``non_positive_price`` (a price that rounds to zero) and the decimal codes."""
    if sender not in state.oracle_operators:
        raise ProtocolError("not_oracle_operator", "only oracle operators may submit prices", field="sender")
    parsed = []
    for ticker in sorted(msg.prices):
        market = get_market(state, ticker)
        ticks = parse_decimal_rounded(msg.prices[ticker], market.price_decimals, field=f"prices.{ticker}")
        if ticks <= 0:
            raise ProtocolError("non_positive_price", f"price for {ticker} rounds to zero", field=f"prices.{ticker}")
        parsed.append((market, ticks, msg.prices[ticker]))
    for market, ticks, raw in parsed:
        market.submissions[sender] = (ticks, state.time_ms)
        state.touch(market.key)
        events.append({"type": "oracle_submission", "market": market.ticker, "operator": sender, "price": ticks,
                       "raw": raw})
    return {}


def update_oracle_prices(state: State, events: Events) -> None:
    """End-of-block step: aggregate each market's fresh submissions into its oracle price."""
    now = state.time_ms
    for market in state.markets.values():
        if market.status == "settled":
            continue  # its price is its settlement price for good (bastion.core.twap)
        params = market.oracle_params
        fresh = []
        new_this_block = False
        for operator in sorted(market.submissions):
            ticks, submitted_ms = market.submissions[operator]
            if now - submitted_ms <= params.max_staleness_ms:
                fresh.append((operator, ticks))
                new_this_block |= submitted_ms == now
        kept = fresh
        if fresh:
            center = median_low([ticks for _, ticks in fresh])
            deviation = params.max_source_deviation_ppm * center  # compared exactly: |p - median| * 1e6 <= dev * median
            kept = [(op, ticks) for op, ticks in fresh if abs(ticks - center) * PPM <= deviation]
            for operator, ticks in fresh:
                if abs(ticks - center) * PPM > deviation:
                    events.append({"type": "oracle_source_rejected", "market": market.ticker, "operator": operator,
                                   "price": ticks, "median": center,
                                   "max_source_deviation_ppm": params.max_source_deviation_ppm})
        # the kept sources must also be a strict majority of the fresh ones: with two fresh sources that
        # disagree by more than the deviation, the lower median would make the lower one the centre and
        # reject the other, so a single wicking source would set the price; no majority, no price
        stale = len(kept) < params.min_sources or 2 * len(kept) <= len(fresh)
        if stale != market.stale:
            market.stale = stale
            state.touch(market.key)
            events.append({"type": "oracle_stale" if stale else "oracle_fresh", "market": market.ticker,
                           "fresh_sources": len(kept), "min_sources": params.min_sources})
        if stale:
            continue
        target = median_low([ticks for _, ticks in kept])
        previous = market.oracle_price
        # at least one tick per block, so a coarse tick grid cannot freeze the price
        max_move = max(1, ppm_of_down(previous, params.max_move_per_block_ppm))
        price = min(max(target, previous - max_move), previous + max_move)
        if price != previous or new_this_block:
            market.oracle_price = price
            state.touch(market.key)
            events.append({"type": "oracle_price", "market": market.ticker, "price": price, "previous": previous,
                           "median": target, "sources": len(kept), "clamped": price != target})

