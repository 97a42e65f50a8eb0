"""Pure funding maths (DESIGN.md section 7), following dYdX v4.

How funding works, in three cadences:

* every block, ``premium_ppm`` reads a premium sample off the order book: how far the price to
  trade ``impact_notional`` sits above (or below) the oracle price;
* every minute, the block samples are reduced to one sample with ``median_low``;
* every hour, ``funding_rate_8h_ppm`` averages the minute samples into an 8-hour rate, and
  ``funding_index_delta`` turns that rate into a move of the market's funding index.

Positions settle lazily against the index with ``bastion.risk_model.funding_settlement``.

Units: prices in ticks, sizes in lots, rates in ppm, amounts in micro-USDC, funding index in
ppm * micro-USDC per lot, time in seconds. Every function is pure and integer-only (exact
``Fraction`` inside ``premium_ppm``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Final

from bastion.core.errors import InvariantViolation
from bastion.risk_model import notional

__all__ = ["funding_index_delta", "funding_rate_8h_ppm", "premium_ppm", "median_low"]

_PPM: Final = 1_000_000
_QUOTE_DECIMALS: Final = 6  # micro-USDC
FUNDING_PERIOD_S: Final = 8 * 60 * 60  # the rate is quoted per 8 hours


def _trunc_div(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded toward zero."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def _trunc(value: Fraction) -> int:
    """A rational rounded toward zero."""
    return _trunc_div(value.numerator, value.denominator)


def funding_index_delta(
    *, rate_8h_ppm: int, oracle_ticks: int, size_decimals: int, price_decimals: int, elapsed_s: int
) -> int:
    """How much the market's funding index moves after ``elapsed_s`` seconds at ``rate_8h_ppm``.

    dYdX ``GetFundingIndexDelta``: ``trunc(notional(elapsed_s * rate, oracle) / 28_800)``, i.e. the
    rate pro-rated over the 8-hour period, times the oracle value of one lot. Both steps round
    toward zero. Unit: ppm * micro-USDC per lot.
    """
    # dYdX multiplies the time numerator in first, then values it like a size at the oracle price.
    rate_seconds = elapsed_s * rate_8h_ppm
    value = notional(rate_seconds, oracle_ticks, size_decimals=size_decimals, price_decimals=price_decimals)
    return _trunc_div(value, FUNDING_PERIOD_S)


def funding_rate_8h_ppm(
    samples_ppm: Sequence[int], *, expected_samples: int, default_funding_ppm: int, clamp_ppm: int
) -> int:
    """The 8-hour funding rate of one funding tick, in ppm.

    ``trunc(mean) + default_funding_ppm`` clamped to ``[-clamp_ppm, clamp_ppm]``, where the mean is
    taken over the samples padded with zeros to ``max(len(samples_ppm), expected_samples)``: missing
    samples (a halted market, a late start) count as zero premium rather than letting a few samples
    set the rate. With no samples at all the premium part is zero.
    ``clamp_ppm`` comes from ``bastion.risk_model.funding_clamp_ppm``.
    """
    count = max(len(samples_ppm), expected_samples)
    average_ppm = _trunc_div(sum(samples_ppm), count) if count > 0 else 0
    rate_ppm = average_ppm + default_funding_ppm
    return max(-clamp_ppm, min(clamp_ppm, rate_ppm))


def premium_ppm(
    *,
    bids: Iterable[tuple[int, int]],
    asks: Iterable[tuple[int, int]],
    oracle_ticks: int,
    size_decimals: int,
    price_decimals: int,
    impact_notional: int,
    max_abs_premium_ppm: int,
) -> int:
    """One premium sample from the book (dYdX memclob ``GetPricePremium``), in ppm.

    ``bids``/``asks`` are ``(price_ticks, lots)`` levels, best first. The impact bid (ask) is the
    average price at which selling (buying) ``impact_notional`` micro-USDC would fill; with
    ``impact_notional == 0`` it is the best price. Then:

    * ``impact_bid / oracle - 1`` when the impact bid is above the oracle price;
    * ``impact_ask / oracle - 1`` when the impact ask is below the oracle price;
    * 0 otherwise, including when that side of the book cannot absorb ``impact_notional``.

    Computed exactly, rounded toward zero, clamped to ``[-max_abs_premium_ppm, max_abs_premium_ppm]``.
    """
    if oracle_ticks <= 0:
        raise InvariantViolation(f"premium needs a positive oracle price, got {oracle_ticks} ticks")
    if impact_notional < 0:
        raise InvariantViolation(f"impact notional must not be negative, got {impact_notional}")
    bid_levels, ask_levels = list(bids), list(asks)
    for price_ticks, lots in bid_levels + ask_levels:
        if price_ticks <= 0 or lots <= 0:
            raise InvariantViolation(f"invalid book level ({price_ticks} ticks, {lots} lots)")
    if bid_levels and ask_levels and bid_levels[0][0] >= ask_levels[0][0]:
        raise InvariantViolation(f"crossed book: best bid {bid_levels[0][0]} >= best ask {ask_levels[0][0]}")

    # micro-USDC per (lot * tick): the notional exponent, kept exact even when it is negative.
    quote_per_lot_tick = Fraction(10) ** (_QUOTE_DECIMALS - size_decimals - price_decimals)
    oracle = Fraction(oracle_ticks)
    if bid_levels and bid_levels[0][0] > oracle_ticks:
        impact_price = _impact_price_ticks(bid_levels, impact_notional, quote_per_lot_tick)
        if impact_price is None or impact_price <= oracle:
            return 0
    elif ask_levels and ask_levels[0][0] < oracle_ticks:
        impact_price = _impact_price_ticks(ask_levels, impact_notional, quote_per_lot_tick)
        if impact_price is None or impact_price >= oracle:
            return 0
    else:
        return 0
    premium = _trunc((impact_price / oracle - 1) * _PPM)
    return max(-max_abs_premium_ppm, min(max_abs_premium_ppm, premium))


def _impact_price_ticks(
    levels: list[tuple[int, int]], impact_notional: int, quote_per_lot_tick: Fraction
) -> Fraction | None:
    """Average fill price (ticks, exact) of an order for ``impact_notional`` micro-USDC walking
    ``levels`` best first; the best price when ``impact_notional == 0``; ``None`` when the levels
    hold less than ``impact_notional``."""
    if impact_notional == 0:
        return Fraction(levels[0][0])
    remaining_quote = Fraction(impact_notional)
    filled_lots = Fraction(0)
    for price_ticks, lots in levels:
        level_quote = price_ticks * lots * quote_per_lot_tick
        if remaining_quote <= level_quote:
            filled_lots += remaining_quote / (price_ticks * quote_per_lot_tick)
            return impact_notional / (filled_lots * quote_per_lot_tick)
        filled_lots += lots
        remaining_quote -= level_quote
    return None


def median_low(values: Sequence[int]) -> int:
    """The lower median of a non-empty list: the middle value, or the smaller of the two middle
    values when the count is even. Used to reduce a minute of block premiums to one sample; the
    lower median always returns an observed sample (no rounding of an average of two)."""
    if not values:
        raise ValueError("median_low of an empty list")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]
