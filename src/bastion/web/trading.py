"""What the trade page shows beyond the API's descriptions: market statistics (mark, funding rate and
the time to the next tick, 24 h change and volume, open interest in USDC), the book with cumulative
depth and the spread, and the trader's positions with ROE and funding, and an account summary.

Pure reads of a ``State`` (the caller holds the node's lock) with the core's and the API's own
valuation (``bastion.core.funding``, ``bastion.api.risk``): the integers are computed here and turned
into decimal text on their grids; the page's filters (``bastion.web.formatting``) group digits and
add units. The 24 h figures come from read-model candles, passed in as rows.
"""
from __future__ import annotations

from typing import Any

from bastion.api.risk import compute_liquidation_ticks, compute_totals, holdings_of
from bastion.api.views import price_text, size_text, tier_max_leverage_ppm
from bastion.core.book import BUY, SELL
from bastion.core.funding import funding_rate_8h_ppm
from bastion.core.governance.ui_rules import effective_ui_requirements
from bastion.core.state import Market, State, Subaccount
from bastion.core.units import PPM, format_ppm, format_usdc
from bastion.presentation import describe_position
from bastion.risk_model import funding_clamp_ppm, funding_settlement, notional

__all__ = ["DAY_MS", "describe_account_summary", "describe_depth", "describe_market_stats", "describe_positions"]

DAY_MS = 86_400_000


def _notional(market: Market, lots: int, ticks: int) -> int:
    return notional(lots, ticks, size_decimals=market.size_decimals, price_decimals=market.price_decimals)


def describe_market_stats(state: State, market: Market, hourly: list[dict[str, Any]]) -> dict[str, Any]:
    """Mark (the oracle price: Bastion marks to it), the funding rate the next tick would pay now
    (per hour, and per 8 h as the core computes it) and the block time of that tick, open interest in
    USDC, and from ``hourly`` (raw 1 h candles, oldest first) the 24 h change and volume."""
    params, tier = state.funding, state.tiers[market.tier_id]
    clamp = funding_clamp_ppm(params.clamp_factor_ppm, tier.initial_margin_ppm, tier.maintenance_fraction_ppm)
    rate_8h = funding_rate_8h_ppm(market.minute_samples, expected_samples=params.tick_ms // params.sample_ms,
                                  default_funding_ppm=params.default_funding_ppm, clamp_ppm=clamp)
    next_tick_ms = (state.time_ms // params.tick_ms + 1) * params.tick_ms
    since = state.time_ms - DAY_MS
    day = [c for c in hourly if int(c["start_ms"]) + 3_600_000 > since]
    change = None
    if day and int(day[0]["open"]):
        first = int(day[0]["open"])
        change = {"price": price_text(market, market.oracle_price - first),
                  "ratio": format_ppm((market.oracle_price - first) * PPM // first)}
    return {"mark": price_text(market, market.oracle_price),
            "funding_rate_8h": format_ppm(rate_8h), "funding_rate_1h": format_ppm(rate_8h // 8),
            "next_funding_ms": next_tick_ms, "next_funding_in_s": (next_tick_ms - state.time_ms) // 1_000,
            "open_interest_usdc": format_usdc(_notional(market, market.open_interest, market.oracle_price)),
            "change_24h": change,
            "volume_24h_usdc": format_usdc(sum(int(c["volume_quote"]) for c in day))}


def describe_depth(market: Market, depth: int) -> dict[str, Any]:
    """``depth`` levels a side, best first, each with its cumulative size and that size's share of
    the deeper side in percent (the depth bar); the spread in price and as a fraction of the mid."""
    cumulative: dict[str, list[tuple[int, int, int]]] = {}  # side -> (ticks, lots, lots up to this level)
    for name, side in (("bids", BUY), ("asks", SELL)):
        levels: list[tuple[int, int, int]] = []
        for ticks, lots in market.book.iter_levels(side):
            if len(levels) == depth:
                break
            levels.append((ticks, lots, lots + (levels[-1][2] if levels else 0)))
        cumulative[name] = levels
    deepest = max((levels[-1][2] for levels in cumulative.values() if levels), default=1)
    sides = {name: [{"price": price_text(market, ticks), "size": size_text(market, lots),
                     "cumulative": size_text(market, total), "depth_pct": total * 100 // deepest}
                    for ticks, lots, total in levels]
             for name, levels in cumulative.items()}
    bid, ask = market.book.best_bid(), market.book.best_ask()
    spread = None
    if bid is not None and ask is not None:
        spread = {"price": price_text(market, ask - bid), "ratio": format_ppm((ask - bid) * 2 * PPM // (ask + bid))}
    return {**sides, "spread": spread}


def describe_positions(state: State, owner: str, numbers: tuple[int, ...]) -> list[dict[str, Any]]:
    """The owner's positions over the given subaccounts: size, entry, mark, unrealised PnL and ROE
    (PnL over the position's initial margin), liquidation price, initial margin and the funding the
    position would settle now (positive: received)."""
    rows = []
    for number in numbers:
        sub = state.subaccounts.get((owner, number))
        if sub is None:
            continue
        holdings = holdings_of(state, sub)
        _, _, _, per_market = compute_totals(state, holdings)
        for ticker, position in sorted(sub.positions.items()):
            market = state.markets[ticker]
            value, initial, _ = per_market[ticker]
            pnl = value - position.cost
            funding = funding_settlement(market.funding_index, position.funding_index, position.size) // PPM
            rows.append({**describe_position(state, ticker, position), "subaccount": number, "mode": sub.mode,
                         "side": "long" if position.size > 0 else "short",
                         "abs_size": size_text(market, abs(position.size)), "price_decimals": market.price_decimals,
                         "mark": price_text(market, market.oracle_price), "notional": format_usdc(abs(value)),
                         "roe": None if initial <= 0 else format_ppm(pnl * PPM // initial),
                         "liquidation_price": price_text(market, compute_liquidation_ticks(state, holdings, ticker)),
                         "margin": format_usdc(initial), "funding": format_usdc(funding)})
    return rows


def describe_account_summary(state: State, sub: Subaccount | None, market: Market) -> dict[str, Any] | None:
    """One subaccount's equity, free collateral and margin ratio (maintenance over equity), and its
    leverage cap in ``market``: the initial margin fraction it uses there (its own setting, else the
    market's governed default leverage, else the tier's) and the most offered (the tier's, capped by the
    market's governed UI requirements), both as whole leverage (truncated, at least 1)."""
    if sub is None:
        return None
    equity, initial, maintenance, _ = compute_totals(state, holdings_of(state, sub))
    ui, tier_max = effective_ui_requirements(state, market.ticker), tier_max_leverage_ppm(state, market)
    offered = max(1, min(ui.max_leverage_ppm or tier_max, tier_max) // PPM)
    override = sub.imf_overrides.get(market.ticker)
    leverage = PPM // override if override is not None else (ui.default_leverage_ppm or tier_max) // PPM
    return {"number": sub.number, "mode": sub.mode, "equity": format_usdc(equity),
            "free_collateral": format_usdc(equity - initial),
            "margin_ratio": None if equity <= 0 else format_ppm(maintenance * PPM // equity),
            "leverage": max(1, min(leverage, offered)), "max_leverage": offered}
