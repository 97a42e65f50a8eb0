"""Account valuation for the API: totals, entry prices, unrealised PnL and liquidation prices.

Everything here reads a ``State`` (the caller holds the node's lock) and computes with the public
risk model (``bastion.risk_model``) and the engine's own valuation (``bastion.core.margin``);
nothing is re-implemented and nothing is mutated.

**Liquidation price** of a position, the other oracle prices held fixed. The account is
liquidatable when ``MMR > 0 and TNC < MMR`` (``risk_model.is_liquidatable``), with, at a price
``p`` (ticks) of the market and ``s`` lots::

    TNC(p) = C + notional(s, p)                  C = balance + pending funding + other positions' values
    MMR(p) = M + mmr(|notional(s, p)|)           M = other positions' maintenance requirements

so, in closed form (``k`` = micro-USDC per lot per tick, ``m`` = the tier's maintenance fraction
of notional ``MMF = IMF * fraction``), ignoring rounding::

    long  (s > 0): p_liq = (M - C) / (s * k * (1 - m))      liquidated at or below p_liq
    short (s < 0): p_liq = (C - M) / (|s| * k * (1 + m))     liquidated at or above p_liq

The API reports the exact boundary on the tick grid instead: the highest tick at which a long is
liquidatable (the lowest for a short), found by bisection over ``is_liquidatable`` computed with
``risk_model.notional`` and ``risk_model.margin_requirements``, so it carries the engine's
rounding. A long that no price above zero liquidates (``C >= M``, fully backed) has none (None).
The move to liquidation is ``(p_liq - oracle) / oracle`` in ppm, truncated toward zero.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bastion.core.margin import compute_position_risk, get_pending_funding
from bastion.core.state import Market, State, Subaccount
from bastion.core.units import PPM
from bastion.risk_model import is_liquidatable, margin_requirements, notional

__all__ = ["Holdings", "compute_liquidation_ticks", "compute_move_ppm", "compute_totals",
           "holdings_of", "position_value"]


@dataclass
class Holdings:
    """What a subaccount holds, real or hypothetical: collateral (balance with pending funding
    settled), signed sizes and costs per market, and its own initial-margin overrides."""

    collateral: int
    sizes: dict[str, int] = field(default_factory=dict)
    costs: dict[str, int] = field(default_factory=dict)
    imf_overrides: dict[str, int] = field(default_factory=dict)

    def changed(self, ticker: str, delta: int, cost_delta: int, collateral_delta: int) -> Holdings:
        """A copy with ``delta`` lots (costing ``cost_delta``) more in ``ticker`` and the collateral moved."""
        sizes, costs = dict(self.sizes), dict(self.costs)
        sizes[ticker] = sizes.get(ticker, 0) + delta
        costs[ticker] = costs.get(ticker, 0) + cost_delta
        if sizes[ticker] == 0:
            del sizes[ticker], costs[ticker]
        return Holdings(self.collateral + collateral_delta, sizes, costs, dict(self.imf_overrides))


def holdings_of(state: State, sub: Subaccount | None) -> Holdings:
    """A subaccount's holdings (an empty one for a subaccount that does not exist)."""
    if sub is None:
        return Holdings(0)
    return Holdings(sub.balance + get_pending_funding(state, sub),
                    {t: p.size for t, p in sub.positions.items()},
                    {t: p.cost for t, p in sub.positions.items()}, dict(sub.imf_overrides))


def position_value(market: Market, lots: int, ticks: int) -> int:
    """Signed micro-USDC value of ``lots`` at ``ticks``."""
    return notional(lots, ticks, size_decimals=market.size_decimals, price_decimals=market.price_decimals)


def _maintenance(state: State, market: Market, lots: int, ticks: int) -> int:
    tier = state.tiers[market.tier_id]
    return margin_requirements(abs(position_value(market, lots, ticks)), tier.initial_margin_ppm,
                               tier.maintenance_fraction_ppm)[1]


def compute_totals(state: State, holdings: Holdings) -> tuple[int, int, int, dict[str, tuple[int, int, int]]]:
    """(TNC, initial requirement, MMR, per market (value, initial, maintenance)) at oracle prices,
    with the engine's valuation (``core.margin.compute_position_risk``)."""
    per_market = {}
    for ticker, size in holdings.sizes.items():
        market = state.markets[ticker]
        per_market[ticker] = compute_position_risk(state, market, size, market.open_interest,
                                                   holdings.imf_overrides.get(ticker), holdings.costs.get(ticker, 0))
    return (holdings.collateral + sum(v for v, _, _ in per_market.values()),
            sum(i for _, i, _ in per_market.values()), sum(m for _, _, m in per_market.values()), per_market)


def compute_liquidation_ticks(state: State, holdings: Holdings, ticker: str) -> int | None:
    """The tick price of ``ticker`` at which the account becomes liquidatable, the others fixed
    (module docstring): the highest such tick for a long, the lowest for a short; None if none."""
    size = holdings.sizes.get(ticker, 0)
    if size == 0:
        return None
    market = state.markets[ticker]
    rest_collateral, rest_maintenance = holdings.collateral, 0
    for other, other_size in holdings.sizes.items():
        if other != ticker:
            other_market = state.markets[other]
            rest_collateral += position_value(other_market, other_size, other_market.oracle_price)
            rest_maintenance += _maintenance(state, other_market, other_size, other_market.oracle_price)

    def liquidatable(ticks: int) -> bool:
        return is_liquidatable(rest_collateral + position_value(market, size, ticks),
                               rest_maintenance + _maintenance(state, market, size, ticks))

    if size > 0:  # liquidatable at every tick <= the boundary: the last liquidatable tick
        if not liquidatable(1):
            return None
        return _last_true(liquidatable, 1, max(market.oracle_price, 2))
    if liquidatable(1):  # a short liquidatable at any price
        return 1
    # liquidatable at every tick >= the boundary: one above the last safe tick
    return _last_true(lambda ticks: not liquidatable(ticks), 1, max(market.oracle_price, 2)) + 1


def _last_true(test: Callable[[int], bool], low: int, high: int) -> int:
    """The last tick where ``test`` holds, for a test true up to a boundary and false after it,
    given ``test(low)``: double ``high`` until the test fails there, then bisect."""
    while test(high):
        low, high = high, high * 2
    while high - low > 1:  # invariant: test(low), not test(high)
        middle = (low + high) // 2
        if test(middle):
            low = middle
        else:
            high = middle
    return low


def compute_move_ppm(liquidation_ticks: int | None, oracle_ticks: int) -> int | None:
    """``(liquidation - oracle) / oracle`` in ppm, truncated toward zero (None without a price)."""
    if liquidation_ticks is None:
        return None
    move = (liquidation_ticks - oracle_ticks) * PPM
    return move // oracle_ticks if move >= 0 else -(-move // oracle_ticks)
