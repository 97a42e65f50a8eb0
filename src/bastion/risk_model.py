"""The public risk model of Bastion: every margin, liquidation and funding formula in one place.

This module is the contract of DESIGN.md section 15. It is pure (stdlib only, no I/O, no state)
so that anyone can import it and check the exchange's arithmetic. The engine calls these
functions; nothing else re-implements them. The formulas are dYdX v4's, and dYdX's own unit-test
vectors are replayed against them (``tests/test_risk_model_vectors.py``).

Units (DESIGN.md section 2)
    * amounts ("quote", "notional", "collateral", "margin"): integer micro-USDC, 1 USDC = 1_000_000;
    * sizes: integer **lots**, one lot = 10**-size_decimals of the base asset (signed: long > 0);
    * prices: integer **ticks**, one tick = 10**-price_decimals USDC per unit of base asset;
    * rates and fractions: integer parts per million (ppm), 1_000_000 = 100%;
    * funding indices: ppm * micro-USDC per lot.
    dYdX names: quote quantums = micro-USDC, base quantums = lots with
    ``atomic_resolution = -size_decimals``, oracle price exponent = ``-price_decimals``.

Every argument and result is an ``int`` except ``fillable_price``, which returns an exact
``fractions.Fraction``. No floats anywhere.

Rounding (always in favour of the protocol)
    ==================================  =========================================================
    ``notional``                        toward zero (exact when 6 - size_decimals - price_decimals >= 0)
    ``maintenance_margin_ppm``          down
    ``adjusted_initial_margin_ppm``     down (the open-interest increase is floored)
    ``margin_requirements``             up (both IMR and MMR: requirements round up)
    ``bankruptcy_amount``               up (the subtracted share of collateral is floored)
    ``fillable_price``                  exact rational
    ``liquidation_size``                down (lots for the allowed notional, then to a step multiple)
    ``insurance_fund_delta``            the fee cap rounds down (payouts round down)
    ``adl_score``                       exact rational (ranks auto-deleveraging candidates)
    ``adl_quote``                       exact (a min of two integers)
    ``funding_clamp_ppm``               down
    ``funding_settlement``              exact (ppm micro-USDC; the caller floors by 1e6 per subaccount)
    ``maker_band_ticks``                inward (the low bound up, the high bound down)
    ``maker_volatility_weight_ppm``     down (the move and the weight)
    ``maker_sample_score``              down (depth toward zero, then the weighted depth)
    ``maker_epoch_score``               down
    ``maker_reward``                    down (the pro-rata share and the cap: paid never exceeds the pool)
    ==================================  =========================================================
"""
from __future__ import annotations

from fractions import Fraction
from typing import Final, Literal

__all__ = [
    # DESIGN.md section 15.
    "maintenance_margin_ppm",
    "adjusted_initial_margin_ppm",
    "margin_requirements",
    "is_liquidatable",
    "compare_risk",
    "bankruptcy_amount",
    "fillable_price",
    "insurance_fund_delta",
    "funding_clamp_ppm",
    "funding_settlement",
    # Liquidation size (dYdX GetMaxAndMinPositionNotionalLiquidatable, GetLiquidatablePositionSizeDelta).
    "position_notional_liquidatable",
    "liquidation_size",
    # Needed by the engine.
    "notional",
    "lots_for_notional",
    "undercollateralized_update_result",
    "is_valid_undercollateralized_update",
    # Maker rewards (DESIGN.md section 12; bastion.core.maker_rewards).
    "maker_band_ticks",
    "maker_volatility_weight_ppm",
    "maker_sample_score",
    "maker_epoch_score",
    "maker_reward",
]

_PPM: Final = 1_000_000
_QUOTE_DECIMALS: Final = 6  # micro-USDC


def _ceil_div(numerator: int, denominator: int) -> int:
    """``ceil(numerator / denominator)`` for a positive denominator."""
    return -(-numerator // denominator)


def _trunc_div(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded toward zero (Go's ``big.Int.Quo``)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


# ---------------------------------------------------------------------------------------------
# Valuation
# ---------------------------------------------------------------------------------------------


def notional(lots: int, ticks: int, *, size_decimals: int, price_decimals: int) -> int:
    """Signed value in micro-USDC of ``lots`` at price ``ticks`` (dYdX ``BaseToQuoteQuantums``).

    ``lots * ticks * 10**(6 - size_decimals - price_decimals)``; when the exponent is negative the
    result is truncated toward zero, so a short is never valued beyond its exact value.
    """
    exponent = _QUOTE_DECIMALS - size_decimals - price_decimals
    product = lots * ticks
    if exponent >= 0:
        scale: int = 10**exponent
        return product * scale
    return _trunc_div(product, 10 ** (-exponent))


def lots_for_notional(quote: int, ticks: int, *, size_decimals: int, price_decimals: int) -> int:
    """Whole lots whose value at ``ticks`` is at most ``quote`` micro-USDC (dYdX
    ``GetNotionalInBaseQuantums``, rounded down); ``quote >= 0``, ``ticks > 0``."""
    exponent = _QUOTE_DECIMALS - size_decimals - price_decimals
    scale: int = 10 ** abs(exponent)
    if exponent >= 0:
        return quote // (ticks * scale)
    return quote * scale // ticks


# ---------------------------------------------------------------------------------------------
# Margin
# ---------------------------------------------------------------------------------------------


def maintenance_margin_ppm(initial_margin_ppm: int, maintenance_fraction_ppm: int) -> int:
    """MMF in ppm: ``floor(IMF * fraction / 1e6)`` (the fraction is a share of the IMF)."""
    return initial_margin_ppm * maintenance_fraction_ppm // _PPM


def adjusted_initial_margin_ppm(
    initial_margin_ppm: int, open_interest_notional: int, oi_lower_cap: int, oi_upper_cap: int
) -> int:
    """The IMF in ppm once raised by open interest (dYdX ``GetAdjustedInitialMarginPpm``).

    * ``IMF`` if ``oi_upper_cap == 0`` (scaling disabled) or ``OI <= oi_lower_cap``;
    * ``1_000_000`` (100%) if ``OI >= oi_upper_cap``;
    * otherwise ``floor((1e6 - IMF) * (OI - lower) / (upper - lower)) + IMF``.
    Open interest and caps are notionals in micro-USDC.
    """
    if oi_upper_cap == 0 or open_interest_notional <= oi_lower_cap:
        return initial_margin_ppm
    if open_interest_notional >= oi_upper_cap:
        return _PPM
    increase = (_PPM - initial_margin_ppm) * (open_interest_notional - oi_lower_cap) // (oi_upper_cap - oi_lower_cap)
    return increase + initial_margin_ppm


def margin_requirements(
    notional: int,
    initial_margin_ppm: int,
    maintenance_fraction_ppm: int,
    *,
    open_interest_notional: int = 0,
    oi_lower_cap: int = 0,
    oi_upper_cap: int = 0,
) -> tuple[int, int]:
    """``(IMR, MMR)`` in micro-USDC of one position of absolute notional ``notional`` (>= 0).

    * ``IMR = ceil(notional * adjusted_IMF / 1e6)`` (the IMF raised by open interest);
    * ``MMR = ceil(ceil(notional * IMF / 1e6) * fraction / 1e6)`` (the base IMF: open interest
      does not raise the maintenance requirement).
    Both round up.
    """
    if notional < 0:
        raise ValueError(f"margin_requirements takes an absolute notional, got {notional}")
    adjusted_imf_ppm = adjusted_initial_margin_ppm(
        initial_margin_ppm, open_interest_notional, oi_lower_cap, oi_upper_cap)
    initial_margin = _ceil_div(notional * adjusted_imf_ppm, _PPM)
    base_initial_margin = _ceil_div(notional * initial_margin_ppm, _PPM)
    maintenance_margin = _ceil_div(base_initial_margin * maintenance_fraction_ppm, _PPM)
    return initial_margin, maintenance_margin


def is_liquidatable(net_collateral: int, maintenance_margin: int) -> bool:
    """An account is liquidatable when ``MMR > 0 and TNC < MMR``."""
    return maintenance_margin > 0 and net_collateral < maintenance_margin


def compare_risk(net_collateral_a: int, maintenance_a: int, net_collateral_b: int, maintenance_b: int) -> int:
    """Order two accounts by risk (dYdX ``Risk.Cmp``): -1 if a is less risky, 0 if equal, 1 if more.

    Compares ``TNC_a / MMR_a`` with ``TNC_b / MMR_b`` by cross multiplication
    (``TNC_b * MMR_a`` against ``TNC_a * MMR_b``). On a tie: if both MMRs are zero the account with
    less collateral is riskier; otherwise the account with the larger MMR is riskier.
    """
    result = _sign(net_collateral_b * maintenance_a - net_collateral_a * maintenance_b)
    if result != 0:
        return result
    if maintenance_a == 0 and maintenance_b == 0:
        return _sign(net_collateral_b - net_collateral_a)
    return _sign(maintenance_a - maintenance_b)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def undercollateralized_update_result(
    old_net_collateral: int,
    old_initial_margin: int,
    old_maintenance: int,
    new_net_collateral: int,
    new_maintenance: int,
) -> Literal["Success", "NewlyUndercollateralized", "StillUndercollateralized"]:
    """dYdX ``IsValidStateTransitionForUndercollateralizedSubaccount``, with dYdX's result names.

    Only meaningful when the account is below its IMR after the update (``new TNC < new IMR``).
    The update is allowed (``"Success"``) only if it leaves the account no riskier:

    1. the MMR must not increase;
    2. if either MMR is zero (no positions), both must be zero and TNC must strictly increase;
    3. otherwise ``new TNC / new MMR >= old TNC / old MMR``, checked as
       ``new TNC * old MMR >= old TNC * new MMR``.

    A refusal is ``"NewlyUndercollateralized"`` if the account met its IMR before the update
    (``old TNC >= old IMR``), else ``"StillUndercollateralized"``.
    """
    if old_net_collateral >= old_initial_margin:
        refusal: Literal["NewlyUndercollateralized", "StillUndercollateralized"] = "NewlyUndercollateralized"
    else:
        refusal = "StillUndercollateralized"
    if new_maintenance > old_maintenance:
        return refusal
    if new_maintenance == 0 or old_maintenance == 0:
        if new_maintenance == 0 and old_maintenance == 0 and new_net_collateral > old_net_collateral:
            return "Success"
        return refusal
    if old_net_collateral * new_maintenance > new_net_collateral * old_maintenance:
        return refusal
    return "Success"


def is_valid_undercollateralized_update(
    old_net_collateral: int,
    old_initial_margin: int,
    old_maintenance: int,
    new_net_collateral: int,
    new_maintenance: int,
) -> bool:
    """True when an update that leaves the account below IMR is still allowed (see
    ``undercollateralized_update_result``): it does not raise the MMR and does not lower TNC/MMR."""
    return undercollateralized_update_result(
        old_net_collateral, old_initial_margin, old_maintenance, new_net_collateral, new_maintenance,
    ) == "Success"


# ---------------------------------------------------------------------------------------------
# Liquidation
# ---------------------------------------------------------------------------------------------


def bankruptcy_amount(
    delta_net_notional: int, net_collateral: int, delta_maintenance: int, total_maintenance: int
) -> int:
    """The quote amount (micro-USDC, signed) at which closing part of a position uses up exactly
    its share of the account's collateral (dYdX ``GetBankruptcyPriceInQuoteQuantums``).

    ``-dNNV - floor(TNC * |dMMR| / TMMR)``: the subtracted share is floored, so the result rounds
    up and closing at it never needs the insurance fund. ``dNNV``/``dMMR`` are the changes of the
    position's net notional and maintenance margin; ``TNC``/``TMMR`` are the account's totals
    before the liquidation (``TMMR > 0``: only liquidatable accounts have a bankruptcy price).
    """
    if total_maintenance <= 0:
        raise ValueError(f"bankruptcy_amount needs a positive total maintenance margin, got {total_maintenance}")
    collateral_share = net_collateral * abs(delta_maintenance) // total_maintenance
    return -delta_net_notional - collateral_share


def fillable_price(
    position_net_notional: int,
    position_maintenance: int,
    position_size: int,
    net_collateral: int,
    total_maintenance: int,
    *,
    bankruptcy_adjustment_ppm: int,
    spread_to_maintenance_ppm: int,
) -> Fraction:
    """The worst price (micro-USDC per lot, exact) a liquidation order may fill at (dYdX
    ``GetFillablePrice``).

    ``(PNNV - ABR * SMMR * PMMR) / PS`` with ``ABR = clamp(BA * (1 - TNC / TMMR), 0, 1)``, where
    ``PNNV``/``PMMR``/``PS`` are the whole position's net notional, maintenance margin and signed
    size, ``BA`` the bankruptcy adjustment and ``SMMR`` the spread-to-maintenance ratio (both ppm).
    A long is sold below the oracle price, a short bought above it. Raises ``ValueError`` for
    ``PS == 0``, ``TMMR <= 0`` or a negative result (dYdX panics on all three).
    """
    if position_size == 0:
        raise ValueError("fillable_price needs an open position (position_size != 0)")
    if total_maintenance <= 0:
        raise ValueError(f"fillable_price needs a positive total maintenance margin, got {total_maintenance}")
    unbounded_rating = Fraction(bankruptcy_adjustment_ppm, _PPM) * (1 - Fraction(net_collateral, total_maintenance))
    adjusted_bankruptcy_rating = min(max(unbounded_rating, Fraction(0)), Fraction(1))
    max_spread = Fraction(position_maintenance * spread_to_maintenance_ppm, _PPM)
    price = (position_net_notional - adjusted_bankruptcy_rating * max_spread) / position_size
    if price < 0:
        raise ValueError(f"fillable_price is negative ({price}): inconsistent position or liquidation config")
    return price


def insurance_fund_delta(fill_quote: int, bankruptcy_quote: int, max_liquidation_fee_ppm: int) -> int:
    """Payment (micro-USDC) from the liquidated account to the insurance fund; negative when the
    fund covers a loss (dYdX ``GetLiquidationInsuranceFundDelta``).

    ``d = fill - bankruptcy``; ``d`` if ``d <= 0``, else ``min(d, floor(|fill| * fee / 1e6))``.
    ``fill_quote`` is the signed quote the account receives for the fill (negative when it buys).
    """
    delta = fill_quote - bankruptcy_quote
    if delta <= 0:
        return delta
    return min(delta, abs(fill_quote) * max_liquidation_fee_ppm // _PPM)


def adl_score(position_notional: int, position_cost: int, net_collateral: int) -> Fraction | None:
    """Auto-deleveraging rank of an opposing position (higher goes first), or None when the position
    is not a candidate: only positions **in profit** at the oracle price may be deleveraged.

    ``score = (notional - cost) / |cost| * |notional| / TNC``: the unrealised PnL ratio times the
    account's effective leverage on this position (Hyperliquid's ranking). ``position_notional`` is
    the signed value at the oracle price, ``position_cost`` its signed cost (``Position.cost``),
    ``net_collateral`` the account's TNC, which must be positive (a winner with TNC <= 0 has no
    defined leverage: the engine ranks such positions after every scored one).
    """
    profit = position_notional - position_cost
    if profit <= 0:
        return None
    if net_collateral <= 0:
        raise ValueError("adl_score needs a positive net collateral")
    return Fraction(profit * abs(position_notional), max(abs(position_cost), 1) * net_collateral)


def adl_quote(bankruptcy_quote: int, counterparty_cost_closed: int) -> int:
    """What the deleveraged account receives (signed micro-USDC) for lots closed against a winner:
    its bankruptcy quote, but never so much that the winner realises a loss on the closed lots.

    ``counterparty_cost_closed`` is the signed cost the winner's position sheds for those lots
    (positive for a long, negative for a short). The winner receives ``-quote`` and realises
    ``-quote - cost_closed``, so ``min(bankruptcy_quote, -cost_closed)`` keeps that ``>= 0``: the
    lots close at the bankruptcy price but never worse for the winner than its entry price.
    """
    return min(bankruptcy_quote, -counterparty_cost_closed)


def position_notional_liquidatable(
    position_notional: int, *, min_position_notional: int, max_position_portion_ppm: int
) -> tuple[int, int]:
    """(min, max) notional of one position that a liquidation may close in one block (dYdX
    ``GetMaxAndMinPositionNotionalLiquidatable``).

    ``min = min(min_position_notional, |PN|)``; ``max = max(min, floor(|PN| * portion / 1e6))``:
    a position smaller than the minimum is closed whole, a larger one a portion at a time.
    """
    absolute = abs(position_notional)
    minimum = min(min_position_notional, absolute)
    return minimum, max(minimum, absolute * max_position_portion_ppm // _PPM)


def liquidation_size(
    position_size: int,
    oracle_price: int,
    *,
    size_decimals: int,
    price_decimals: int,
    min_position_notional: int,
    max_position_portion_ppm: int,
    subaccount_notional_left: int,
    step_lots: int = 1,
) -> int:
    """Signed lots a liquidation may trade this block to reduce ``position_size`` (dYdX
    ``GetLiquidatablePositionSizeDelta``); the sign is opposite to the position's.

    The allowed notional is the position's block limit (``position_notional_liquidatable``) capped
    by what the subaccount may still have liquidated this block (``subaccount_notional_left``:
    the per-block limit minus the notional already liquidated); it is converted to lots at the
    oracle price (down), rounded down to a multiple of ``step_lots`` and capped at the position.
    """
    if position_size == 0:
        return 0
    position_notional = notional(position_size, oracle_price, size_decimals=size_decimals,
                                 price_decimals=price_decimals)
    _, position_max = position_notional_liquidatable(
        position_notional, min_position_notional=min_position_notional,
        max_position_portion_ppm=max_position_portion_ppm)
    allowed = max(min(position_max, subaccount_notional_left), 0)
    lots = lots_for_notional(allowed, oracle_price, size_decimals=size_decimals, price_decimals=price_decimals)
    lots = min(lots // step_lots * step_lots, abs(position_size))
    return -lots if position_size > 0 else lots


# ---------------------------------------------------------------------------------------------
# Funding
# ---------------------------------------------------------------------------------------------


def funding_clamp_ppm(clamp_factor_ppm: int, initial_margin_ppm: int, maintenance_fraction_ppm: int) -> int:
    """Largest absolute 8-hour funding rate in ppm: ``floor(clamp_factor * (IMF - MMF) / 1e6)``."""
    margin_gap_ppm = initial_margin_ppm - maintenance_margin_ppm(initial_margin_ppm, maintenance_fraction_ppm)
    return clamp_factor_ppm * margin_gap_ppm // _PPM


def funding_settlement(market_funding_index: int, position_funding_index: int, position_size: int) -> int:
    """Funding owed to a position since it last settled, in ppm micro-USDC (signed):
    ``-(market_index - position_index) * size``. Longs pay when the index rises. The caller sums
    a subaccount's positions and divides by 1e6 with floor."""
    return -(market_funding_index - position_funding_index) * position_size


# ---------------------------------------------------------------------------------------------
# Maker rewards (DESIGN.md section 12; sampled and paid by bastion.core.maker_rewards)
# ---------------------------------------------------------------------------------------------
def maker_band_ticks(oracle_price: int, *, band_ppm: int) -> tuple[int, int]:
    """The prices (ticks, inclusive) within ``band_ppm`` of ``oracle_price``: ``oracle x (1 - band)``
    rounded up to ``oracle x (1 + band)`` rounded down, so a quote counts only when it is inside."""
    low = _ceil_div(oracle_price * (_PPM - band_ppm), _PPM)
    high = oracle_price * (_PPM + band_ppm) // _PPM
    return low, high


def maker_volatility_weight_ppm(previous_price: int, oracle_price: int, *, slope_ppm: int,
                                max_weight_ppm: int) -> int:
    """A sample's weight: ``1 + slope x |oracle_price - previous_price| / previous_price`` in ppm
    (the oracle's realised move over the sampling interval, floored to whole ppm, then the weight
    floored), at most ``max_weight_ppm``; 1 (``1_000_000``) with no previous price (0)."""
    if previous_price <= 0:
        return _PPM
    move_ppm = abs(oracle_price - previous_price) * _PPM // previous_price
    return min(_PPM + move_ppm * slope_ppm // _PPM, max_weight_ppm)


def maker_sample_score(bid_lots: int, ask_lots: int, oracle_price: int, weight_ppm: int, *, size_decimals: int,
                       price_decimals: int) -> int:
    """One sample of one maker on one market: its two-sided depth, the smaller of its qualifying bid
    and ask lots valued at the oracle price (micro-USDC, ``notional``), times the sample's weight
    (floored). Zero unless the maker quotes both sides."""
    depth = notional(min(bid_lots, ask_lots), oracle_price, size_decimals=size_decimals,
                     price_decimals=price_decimals)
    return depth * weight_ppm // _PPM


def maker_epoch_score(weighted_depth: int, two_sided_samples: int, samples: int) -> int:
    """A maker's epoch score on one market: its summed weighted depth times its time in market (the
    share of the market's samples in which it quoted both sides), floored; 0 without samples."""
    if samples <= 0:
        return 0
    return weighted_depth * two_sided_samples // samples


def maker_reward(pool: int, score: int, total_score: int, *, max_share_ppm: int) -> int:
    """A maker's payout at the epoch end: its pro-rata share ``pool x score / total_score`` of the
    pool, floored, at most ``max_share_ppm`` of the pool (floored). The payouts of one epoch never
    add up to more than the pool: each share is floored and the scores add up to ``total_score``."""
    if total_score <= 0 or score <= 0:
        return 0
    return min(pool * score // total_score, pool * max_share_ppm // _PPM)
