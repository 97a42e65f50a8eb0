"""What the pages show that the API does not already describe: per-asset exposure with the cross
versus isolated comparison, and a proposal's action diff against the current values.

Pure reads of a ``State`` (the caller holds the node's lock), computed with the API's own valuation
(``bastion.api.risk``) and governance's own validation (``governance.compute_action_changes``):
nothing is re-implemented.
"""
from __future__ import annotations

from typing import Any

from bastion.api.risk import Holdings, compute_liquidation_ticks, compute_move_ppm, compute_totals, holdings_of
from bastion.api.views import describe_stress_gate, price_text, size_text
from bastion.core import governance, votes
from bastion.core.errors import ProtocolError
from bastion.core.state import Proposal, State, Subaccount
from bastion.core.timefmt import format_iso_ms
from bastion.core.units import PPM, USDC, format_decimal, format_ppm, format_usdc
from bastion.web.formatting import duration, group, pct, usd

__all__ = ["ISOLATED_MARGIN_MULTIPLE", "describe_exposure", "describe_proposal_diff", "format_param_value"]

ISOLATED_MARGIN_MULTIPLE = 2  # the comparison funds an isolated subaccount with 2x the position's IMR (as the preview)


def describe_exposure(state: State, sub: Subaccount) -> list[dict[str, Any]]:
    """Per market: notional, share of the account's MMR, liquidation price and move to it, and for a
    cross subaccount the same position alone in an isolated subaccount funded with twice its initial
    requirement (rounded up to a whole USDC): what is at risk and where it would be liquidated."""
    holdings = holdings_of(state, sub)
    equity, _, maintenance, per_market = compute_totals(state, holdings)
    rows = []
    for ticker in sorted(holdings.sizes):
        market, size = state.markets[ticker], holdings.sizes[ticker]
        value, initial, position_maintenance = per_market[ticker]
        liquidation = compute_liquidation_ticks(state, holdings, ticker)
        move = compute_move_ppm(liquidation, market.oracle_price)
        row: dict[str, Any] = {
            "market": ticker, "side": "long" if size > 0 else "short", "size": size_text(market, abs(size)),
            "notional": format_usdc(abs(value)), "maintenance_margin": format_usdc(position_maintenance),
            "mmr_share": format_ppm(position_maintenance * PPM // maintenance) if maintenance else "0",
            "mmr_share_pct": position_maintenance * 100 // maintenance if maintenance else 0,
            "oracle_price": price_text(market, market.oracle_price),
            "liquidation_price": price_text(market, liquidation),
            "move_to_liquidation": None if move is None else format_ppm(move),
            "cross_at_risk": format_usdc(equity), "isolated": None,
        }
        if sub.mode == "cross":
            amount = -(-ISOLATED_MARGIN_MULTIPLE * initial // USDC) * USDC
            alone = Holdings(0).changed(ticker, size, value, amount - value)
            alone_liquidation = compute_liquidation_ticks(state, alone, ticker)
            alone_move = compute_move_ppm(alone_liquidation, market.oracle_price)
            row["isolated"] = {"amount": format_usdc(amount),
                               "liquidation_price": price_text(market, alone_liquidation),
                               "move_to_liquidation": None if alone_move is None else format_ppm(alone_move)}
        rows.append(row)
    return rows


def format_param_value(state: State, name: str, value: Any) -> str:
    """A governed parameter's raw value for people, in the unit its name carries: ``*_ppm`` as a
    percentage, ``*_usdc`` in dollars, ``*_lots`` and ``*_ticks`` on the market's grid with
    separators, ``*_ms`` as a duration."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "—" if value is None else str(value)
    parts = name.split(".")
    market = state.markets.get(parts[1]) if len(parts) > 2 and parts[0] == "markets" else None
    leaf = parts[-1]
    if leaf.endswith("_ppm"):
        return pct(format_ppm(value), 4)
    if leaf.endswith("_usdc"):
        return usd(format_usdc(value))
    if leaf.endswith("_lots") and market is not None:
        return group(format_decimal(value, market.size_decimals))
    if leaf.endswith("_ticks") and market is not None:
        return group(format_decimal(value, market.price_decimals))
    if leaf.endswith("_ms"):
        return duration(value // 1_000)
    return group(value)


def describe_proposal_diff(state: State, proposal: Proposal) -> dict[str, Any]:
    """Each action's changes against the current values (``compute_action_changes``, the same
    validation as at execution), the rules of its class, its timelock, its execution window once
    queued (``eta_ms`` to ``last_execution_ms``, block times) and its stress gate (the API's
    ``describe_stress_gate``)."""
    changes, error = [], None
    for action in proposal.actions:
        try:
            for change in governance.compute_action_changes(state, action):
                name = change.name
                changes.append({"name": name, "current": format_param_value(state, name, change.old_record),
                                "proposed": format_param_value(state, name, change.new_record),
                                "risk_class": change.risk})
        except ProtocolError as refused:
            error = f"{refused.code}: {refused.message}"
    rules = proposal.rules
    window = None if proposal.queued_ms is None else governance.get_execution_window(state, proposal)
    eta = None if window is None else format_iso_ms(window[0])
    return {"changes": changes, "error": error, "timelock_s": rules.timelock_ms // 1_000,
            "eta_ms": None if window is None else window[0], "last_execution_ms": None if window is None else window[1],
            "quorum": format_ppm(rules.quorum_ppm), "approval_threshold": format_ppm(rules.approval_threshold_ppm),
            "voting_period_blocks": rules.voting_period_blocks, "min_holding_age_blocks": rules.min_holding_age_blocks,
            "eta": eta, "stress_gate": describe_stress_gate(state, proposal),
            "ballots": [{"voter": voter, "option": option, "weight": format_decimal(weight, votes.BGOV_DECIMALS),
                         "reason": reason}
                        for voter, (option, weight, reason) in sorted(proposal.ballots.items())]}
