"""Time-weighted oracle prices for final settlement (issue 16: a settlement that cannot be raced).

A delisted market (``delist_market`` puts it in ``final_settlement``) settles at the **time-weighted
average of its oracle price over the governed window** ``settlement_twap_window`` that ends at the
**start of the block** whose end-of-block step first settles it (``liquidation.settle_final_markets``,
the block in which the proposal executes), never at that block's price.

**The accumulator** (per market, in the state, hashed and in snapshots). Between two blocks the
oracle price is constant: the price the previous block's end set holds from the previous block time
``t0`` until the new block time ``t1``. At ``begin_block`` (``accumulate_prices``) each market adds
``price x (t1 - t0)`` to ``Market.twap_cumulative`` (ticks x ms, an exact integer, like Uniswap v2's
``price0CumulativeLast`` sampled at block times) and sets ``Market.twap_ms = t1``. Because the price
is constant over the gap, the accumulator's value at every whole ``TWAP_SAMPLE_MS`` (one minute)
boundary ``b`` in ``(t0, t1]`` is exact too: ``cumulative(t0) + price x (b - t0)``; those that can
still matter are kept as checkpoints ``(b, cumulative(b))`` in ``Market.twap_checkpoints`` (leaf
``("twap", ticker)``). The first accumulation of a market records ``(t0, 0)``: its start.

**Bounded.** Only the checkpoints from the latest one at or before ``now - window`` on are kept, so
a market holds at most ``window / 1 min + 2`` of them (62 with the default hour); the accumulator
itself is two integers.

**The average.** ``settlement_twap(state, market)`` at block time ``t``: the window starts at the
latest checkpoint ``(s, c)`` with ``s <= t - window`` (a minute boundary, so the window is between
``window`` and ``window + 1 min`` long), or at the market's earliest kept checkpoint when it is
younger than the window (or the window was just lengthened by governance: the history grows back
over one window); the price is ``(twap_cumulative - c) / (t - s)`` ticks, rounded half to even. It
only reads what ``begin_block`` accumulated, i.e. prices set by blocks **before** ``t``.

**Why the execution window cannot be raced.** Anyone may call ``execute`` in any block of a queued
proposal's execution window, so the caller chooses the block. What it cannot choose is the price:
(1) an oracle submission in the executing block (before or after the ``execute`` transaction) moves
only the price from ``t`` on, which no settlement window contains; (2) a pump of the spot by ``x``
(relative) held for ``d`` before ``t`` moves the settlement price by at most ``x * min(d, W) / W``
(``W`` the window), and the oracle's ``max_move_per_block`` clamp further limits how fast a pump
arrives; (3) the price is fixed once, at the first settlement attempt (``Market.settlement_price``),
so a market whose oracle is stale in that block settles later at the same price, not at a later one.
A caller choosing among blocks chooses among averages over overlapping windows; none contains the
block it executes in.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Final

from bastion.core.enums import MarketStatus
from bastion.core.state import Market, State

TWAP_SAMPLE_MS: Final = 60_000   # checkpoints on whole minutes of block time


def accumulate_prices(state: State, previous_ms: int) -> None:
    """``begin_block`` step (after the block time moved from ``previous_ms`` to ``state.time_ms``):
    add each market's price over the gap to its accumulator and record the minute checkpoints that
    fall in it and may still start a window; drop the ones no window can start at any more."""
    now = state.time_ms
    window = state.liquidation.settlement_twap_window_ms
    for market in state.markets.values():
        if market.status == MarketStatus.SETTLED:
            continue
        checkpoints = market.twap_checkpoints
        if not checkpoints:   # the market's first block: its history starts at the previous block
            market.twap_ms, market.twap_cumulative = previous_ms, 0
            checkpoints.append((previous_ms, 0))
            state.touch(("twap", market.ticker))
        start, cumulative, price = market.twap_ms, market.twap_cumulative, market.oracle_price
        if now <= start:
            continue
        oldest_useful = (now - window) // TWAP_SAMPLE_MS * TWAP_SAMPLE_MS
        boundary = max((start // TWAP_SAMPLE_MS + 1) * TWAP_SAMPLE_MS, oldest_useful)
        while boundary <= now:
            checkpoints.append((boundary, cumulative + price * (boundary - start)))
            boundary += TWAP_SAMPLE_MS
            state.touch(("twap", market.ticker))
        market.twap_cumulative = cumulative + price * (now - start)
        market.twap_ms = now
        state.touch(market.key)
        _prune(state, market, now - window)


def _prune(state: State, market: Market, window_start: int) -> None:
    """Keep the latest checkpoint at or before ``window_start`` and every later one."""
    checkpoints = market.twap_checkpoints
    keep_from = 0
    for index, (time_ms, _) in enumerate(checkpoints):
        if time_ms > window_start:
            break
        keep_from = index
    if keep_from:
        del checkpoints[:keep_from]
        state.touch(("twap", market.ticker))


def window_start(state: State, market: Market) -> tuple[int, int]:
    """The ``(time, cumulative)`` checkpoint the settlement window starts at (module docstring)."""
    target = state.time_ms - state.liquidation.settlement_twap_window_ms
    start = market.twap_checkpoints[0]
    for checkpoint in market.twap_checkpoints:
        if checkpoint[0] > target:
            break
        start = checkpoint
    return start


def settlement_twap(state: State, market: Market) -> tuple[int, int, int]:
    """(price in ticks, window start ms, window end ms): the average oracle price over the window
    ending at the current block's start. A market with no elapsed history (created at this very
    block time) has only its current price."""
    if not market.twap_checkpoints or market.twap_ms <= market.twap_checkpoints[0][0]:
        return market.oracle_price, state.time_ms, state.time_ms
    start_ms, start_cumulative = window_start(state, market)
    average = Fraction(market.twap_cumulative - start_cumulative, market.twap_ms - start_ms)
    return max(1, round(average)), start_ms, market.twap_ms
