"""Isolated-to-cross promotion in steps (issue 20): how much of an isolated market's maintenance
requirement cross accounts may carry.

A market listed by the default path is ``isolated_only``: it has its own pool and insurance fund,
and only subaccounts isolated to it may trade it. Its governed ``cross_margin_cap_usdc`` (default
0, set by ``set_market_params.cross_margin_cap`` or ramped by a staged rollout of
``markets.<T>.cross_margin_cap_usdc``) lets cross-margin subaccounts in while the market is still
isolated: a cross subaccount may open or increase a position in it when, with the order's whole
size filled, the maintenance requirement of all cross subaccounts' positions in the market stays
at most the cap (``cross_margin_cap_exceeded``). With the cap 0 the rule is the old one
(``isolated_market_requires_isolated_subaccount``). Reducing orders are always allowed.

The market's own fund still backs every position in it (liquidation fees, bad debt and its
backstop stay with the market's pool), so the cap bounds what the market can draw from the cross
pool's collateral while governance watches the rollout's contagion gates; the last step is the
existing ``upgrade_isolated_to_cross`` (the market joins the cross pool and the cap no longer
applies). The check is made at placement: a later price move can take the cross requirement above
the cap, which then only blocks further increases.
"""
from __future__ import annotations

from bastion.core.errors import ProtocolError
from bastion.core.margin import compute_position_risk
from bastion.core.state import CROSS, Market, State, Subaccount
from bastion.core.units import format_usdc


def get_cross_maintenance(state: State, market: Market, sub: Subaccount | None = None, size_delta: int = 0) -> int:
    """The maintenance requirement (micro-USDC) of the cross-margin subaccounts' positions in
    ``market``, with ``sub``'s position (a cross subaccount) changed by ``size_delta`` lots."""
    total = 0
    seen = False
    for key in market.holders:
        holder = state.subaccounts[key]
        if holder.mode != CROSS:
            continue
        position = holder.positions[market.ticker]
        size, cost = position.size, position.cost
        if holder is sub:
            seen, size = True, size + size_delta
        total += _maintenance(state, market, holder, size, cost)
    if sub is not None and not seen and size_delta:
        total += _maintenance(state, market, sub, size_delta, 0)
    return total


def _maintenance(state: State, market: Market, sub: Subaccount, size: int, cost: int) -> int:
    if not size:
        return 0
    override = sub.imf_overrides.get(market.ticker) if sub.imf_overrides else None
    return compute_position_risk(state, market, size, market.open_interest, override, cost)[2]


def check_cross_order(state: State, market: Market, sub: Subaccount, signed_lots: int) -> None:
    """Refuse a cross subaccount's order that would open or increase a position in the isolated
    ``market`` beyond its cross margin cap: ``isolated_market_requires_isolated_subaccount`` while
    the cap is 0, else ``cross_margin_cap_exceeded``."""
    cap = market.cross_margin_cap_usdc
    if cap == 0:
        raise ProtocolError("isolated_market_requires_isolated_subaccount",
                            f"{market.ticker} trades only from an isolated subaccount (set_margin_mode)",
                            field="market")
    after = get_cross_maintenance(state, market, sub, signed_lots)
    if after > cap:
        raise ProtocolError("cross_margin_cap_exceeded",
                            f"cross accounts would carry {format_usdc(after)} USDC of {market.ticker}'s maintenance "
                            f"requirement, above its cross margin cap {format_usdc(cap)}", field="size",
                            cap=format_usdc(cap), requirement=format_usdc(after))
