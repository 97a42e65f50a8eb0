"""Public reads over the live ``State``: integers in, decimal strings out.

Every function here is a pure read of a ``State`` that the caller holds the node's lock on, so
what it returns is the state after one committed block, whose ``height`` it carries. Reads of
history (trades, candles, orders, fills, funding, liquidations) come from the read models instead
(``bastion.node.readmodels``) and carry the indexed height; see ``bastion.app``.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import asdict
from typing import Any

from bastion.api.risk import compute_liquidation_ticks, compute_move_ppm, compute_totals, holdings_of
from bastion.core import exposure, transparency, votes
from bastion.core.governance.counter_reports import describe_counter_reports
from bastion.core.governance import council_rules as council
from bastion.core.governance.proposals import get_proposal_effects
from bastion.core.governance.ui_rules import effective_ui_requirements
from bastion.core.book import BUY, SELL
from bastion.core.errors import ProtocolError
from bastion.core.messages import ACTION_NAMES
from bastion.core.state import Market, Proposal, State, Subaccount
from bastion.core.timefmt import format_iso_ms
from bastion.core.units import PPM, format_decimal, format_ppm, format_usdc
from bastion.presentation import describe_governance, describe_guardian, describe_position, describe_rollout
from bastion.risk_model import maintenance_margin_ppm

MAX_DEPTH = 500


def get_market_or_404(state: State, ticker: str) -> Market:
    market = state.markets.get(ticker)
    if market is None:
        raise ProtocolError("unknown_market", f"unknown market {ticker!r}", field="market")
    return market


def price_text(market: Market, ticks: int | None) -> str | None:
    return None if ticks is None else format_decimal(ticks, market.price_decimals)


def size_text(market: Market, lots: int) -> str:
    return format_decimal(lots, market.size_decimals)


def describe_tier(state: State, tier_id: int) -> dict[str, Any]:
    tier = state.tiers[tier_id]
    return {"id": tier.tier_id, "name": tier.name, "initial_margin": format_ppm(tier.initial_margin_ppm),
            "maintenance_fraction": format_ppm(tier.maintenance_fraction_ppm),
            "maintenance_margin": format_ppm(maintenance_margin_ppm(tier.initial_margin_ppm,
                                                                    tier.maintenance_fraction_ppm)),
            "oi_lower_cap": format_usdc(tier.oi_lower_cap_usdc), "oi_upper_cap": format_usdc(tier.oi_upper_cap_usdc),
            "impact_notional": format_usdc(tier.impact_notional_usdc),
            "unrealized_profit_weight": format_ppm(tier.unrealized_profit_weight_ppm)}


def describe_market(state: State, market: Market) -> dict[str, Any]:
    """Parameters, tier, oracle, funding, open interest and status of one market."""
    oracle = market.oracle_params
    return {
        "ticker": market.ticker, "status": market.status, "stale": market.stale,
        "size_decimals": market.size_decimals, "price_decimals": market.price_decimals,
        "min_order_size": size_text(market, market.min_order_lots),
        "max_open_interest": size_text(market, market.max_open_interest_lots),
        "maker_fee": format_ppm(market.maker_fee_ppm), "taker_fee": format_ppm(market.taker_fee_ppm),
        "isolated_only": market.isolated_only, "pool": market.pool, "tier": describe_tier(state, market.tier_id),
        "cross_margin_cap": format_usdc(market.cross_margin_cap_usdc),
        "oracle": {"price": price_text(market, market.oracle_price), "min_sources": oracle.min_sources,
                   "max_staleness_s": oracle.max_staleness_ms // 1_000,
                   "max_source_deviation": format_ppm(oracle.max_source_deviation_ppm),
                   "max_move_per_block": format_ppm(oracle.max_move_per_block_ppm),
                   "sources": len(market.submissions)},
        "funding": {"index": str(market.funding_index), "last_tick_hour": market.last_funding_hour,
                    "samples_this_hour": len(market.minute_samples)},
        "open_interest": size_text(market, market.open_interest),
        "best_bid": price_text(market, market.book.best_bid()), "best_ask": price_text(market, market.book.best_ask()),
        "resting_orders": len(market.book),
        "ui_requirements": describe_ui_requirements(state, market),
    }


def tier_max_leverage_ppm(state: State, market: Market) -> int:
    """The most leverage the market's tier allows (1 / initial margin), in ppm of 1x, truncated."""
    return PPM * PPM // state.tiers[market.tier_id].initial_margin_ppm


def describe_ui_requirements(state: State, market: Market) -> dict[str, Any]:
    """What a frontend must show and enforce for ``market`` (``bastion.core.governance.ui_rules``), as
    offered: ``max_leverage`` is the governed maximum capped by the tier's (the tier's alone when none is
    governed), ``default_leverage`` the governed default (else that maximum), ``confirm_above_leverage``
    null when no confirmation is required, ``risk_banner`` null when there is none; leverage as decimal
    multiples of 1x; ``governed`` says whether the market has its own record."""
    ui = effective_ui_requirements(state, market.ticker)
    tier_max = tier_max_leverage_ppm(state, market)
    offered_max = min(ui.max_leverage_ppm or tier_max, tier_max)
    default = min(ui.default_leverage_ppm or offered_max, offered_max)
    return {"risk_banner": ui.risk_banner or None, "isolation_threshold": format_ppm(ui.isolation_threshold_ppm),
            "default_leverage": format_ppm(default), "max_leverage": format_ppm(offered_max),
            "tier_max_leverage": format_ppm(tier_max),
            "confirm_above_leverage": format_ppm(ui.confirm_above_leverage_ppm) if ui.confirm_above_leverage_ppm
            else None,
            "governed": market.ticker in state.ui_requirements}


def describe_book(state: State, market: Market, depth: int) -> dict[str, Any]:
    """The order book aggregated by price level, best first, ``depth`` levels a side."""
    if not 1 <= depth <= MAX_DEPTH:
        raise ProtocolError("invalid_depth", f"depth must be 1..{MAX_DEPTH}", field="depth")

    def levels(side: int) -> list[list[str | None]]:
        out: list[list[str | None]] = []
        for ticks, lots in market.book.iter_levels(side):
            if len(out) == depth:
                break
            out.append([price_text(market, ticks), size_text(market, lots)])
        return out

    return {"height": state.height, "market": market.ticker, "bids": levels(BUY), "asks": levels(SELL)}


def describe_subaccount(state: State, sub: Subaccount) -> dict[str, Any]:
    """Balance, equity (TNC), IMR, MMR, free collateral, margin usage and positions with entry
    price, unrealised PnL, notional, requirements and liquidation price (``bastion.api.risk``)."""
    holdings = holdings_of(state, sub)
    net_collateral, initial, maintenance, per_market = compute_totals(state, holdings)
    positions = []
    for ticker, position in sorted(sub.positions.items()):
        market = state.markets[ticker]
        value, imr, mmr = per_market[ticker]
        liquidation = compute_liquidation_ticks(state, holdings, ticker)
        move = compute_move_ppm(liquidation, market.oracle_price)
        positions.append({**describe_position(state, ticker, position),
                          "side": "long" if position.size > 0 else "short",
                          "notional": format_usdc(value), "oracle_price": price_text(market, market.oracle_price),
                          "initial_margin": format_usdc(imr), "maintenance_margin": format_usdc(mmr),
                          "liquidation_price": price_text(market, liquidation),
                          "move_to_liquidation": None if move is None else format_ppm(move)})
    return {"height": state.height, "owner": sub.owner, "number": sub.number, "mode": sub.mode,
            "isolated_market": sub.isolated_market, "balance": format_usdc(sub.balance),
            "pending_funding": format_usdc(holdings.collateral - sub.balance),
            "equity": format_usdc(net_collateral), "initial_margin": format_usdc(initial),
            "maintenance_margin": format_usdc(maintenance), "free_collateral": format_usdc(net_collateral - initial),
            "margin_usage": None if net_collateral <= 0 else format_ppm(maintenance * 1_000_000 // net_collateral),
            "positions": positions, "open_orders": len(sub.orders), "conditional_orders": len(sub.conditional_orders)}


def get_subaccount_or_404(state: State, owner: str, number: int) -> Subaccount:
    sub = state.subaccounts.get((owner, number))
    if sub is None:
        raise ProtocolError("subaccount_not_found", f"{owner} has no subaccount {number}", field="number")
    return sub


def describe_open_orders(state: State, sub: Subaccount) -> list[dict[str, Any]]:
    """Resting orders (placement order) then untriggered conditional orders of a subaccount (all
    of them: for a bounded read, ``page_open_orders``)."""
    return [_describe_resting(state, order_id, ticker) for order_id, ticker in sub.orders.items()
            if state.markets[ticker].book.get(order_id) is not None] + \
        [_describe_conditional(state, order_id, ticker) for order_id, ticker in sub.conditional_orders.items()]


def page_open_orders(state: State, sub: Subaccount, limit: int,
                     cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a subaccount's open orders: resting ones by order id, then untriggered
    conditional ones by order id, at most ``limit``, after ``cursor`` (``"r<id>"`` or ``"c<id>"``,
    the ``next_cursor`` of the previous page); returns the page and the next cursor (None at the
    end). Costs O(n) integer copies plus ``limit`` descriptions, whatever n: the caller holds the
    node's lock for a few milliseconds even for 200,000 orders."""
    kind, after = parse_order_cursor(cursor)
    out: list[dict[str, Any]] = []
    last = ""
    for this_kind, orders, describe in (("r", sub.orders, _describe_resting),
                                        ("c", sub.conditional_orders, _describe_conditional)):
        if kind == "c" and this_kind == "r":
            continue
        ids = sorted(orders)
        for order_id in ids[bisect_right(ids, after) if this_kind == kind else 0:]:
            ticker = orders[order_id]
            if this_kind == "r" and state.markets[ticker].book.get(order_id) is None:
                continue
            if len(out) == limit:
                return out, last  # more follow
            out.append(describe(state, order_id, ticker))
            last = f"{this_kind}{order_id}"
    return out, None


def parse_order_cursor(cursor: str | None) -> tuple[str, int]:
    """``("r", -1)`` for the first page, else the kind and order id of an open-orders cursor."""
    if cursor is None:
        return "r", -1
    if len(cursor) < 2 or len(cursor) > 21 or cursor[0] not in "rc" or not cursor[1:].isdigit() \
            or not cursor[1:].isascii():
        raise ProtocolError("invalid_cursor", "cursor must be the next_cursor of a previous page", field="cursor")
    return cursor[0], int(cursor[1:])


def _describe_resting(state: State, order_id: int, ticker: str) -> dict[str, Any]:
    market = state.markets[ticker]
    order = market.book.get(order_id)
    assert order is not None  # the caller found it resting in this book
    return {"order_id": order_id, "client_id": order.client_id, "market": ticker,
            "side": "buy" if order.side == BUY else "sell", "price": price_text(market, order.price),
            "size": size_text(market, order.size), "remaining": size_text(market, order.remaining),
            "time_in_force": order.time_in_force, "reduce_only": order.reduce_only,
            "good_til": None if order.good_til_ms is None else format_iso_ms(order.good_til_ms),
            "status": "open" if order.remaining == order.size else "partially_filled",
            "trigger_price": None, "order_type": "limit"}


def _describe_conditional(state: State, order_id: int, ticker: str) -> dict[str, Any]:
    conditional = state.conditional_orders[order_id]
    market, terms = state.markets[ticker], conditional.terms
    return {"order_id": order_id, "client_id": terms.client_id, "market": ticker,
            "side": "buy" if terms.side == BUY else "sell", "price": price_text(market, terms.ticks),
            "size": size_text(market, terms.lots), "remaining": size_text(market, terms.lots),
            "time_in_force": terms.time_in_force, "reduce_only": terms.reduce_only,
            "good_til": None if terms.good_til_ms is None else format_iso_ms(terms.good_til_ms),
            "status": "untriggered", "trigger_price": price_text(market, conditional.trigger_ticks),
            "order_type": conditional.order_type}


def describe_insurance_funds(state: State) -> dict[str, Any]:
    return {"height": state.height,
            "funds": [{"pool": pool, "balance": format_usdc(balance),
                       "bad_debt": format_usdc(state.bad_debt.get(pool, 0)),
                       "withdrawals_paused_until": state.withdrawals_paused_until.get(pool)}
                      for pool, balance in state.insurance_funds.items()],
            "protocol_accounts": {"fees": format_usdc(state.fees_account),
                                  "funding": format_usdc(state.funding_account)}}


def describe_proposals(state: State) -> list[dict[str, Any]]:
    """Every proposal with its tally and timeline (``bastion.presentation.describe_governance``), plus
    its actions as submitted, its stress gate (``describe_stress_gate``) and its participation
    (``describe_participation``, null until its snapshot is taken)."""
    described = describe_governance(state)["proposals"]
    for entry, proposal in zip(described, state.proposals.values()):
        entry["description"] = proposal.description
        entry["submitted_height"] = proposal.submitted_height
        entry["actions"] = [{"type": ACTION_NAMES[type(a)], **{k: v for k, v in asdict(a).items() if v is not None}}
                            for a in proposal.actions]
        entry["stress_gate"] = describe_stress_gate(state, proposal)
        entry["participation"] = describe_participation(state, proposal)
        entry["evidence"] = list(proposal.evidence)
    return described


def describe_voter_exposure(state: State, proposal: Proposal) -> dict[str, Any]:
    """The voter exposure disclosure of ``proposal`` (``bastion.core.exposure``): the markets its
    changes touch with their effect on position holders, every exposed delegate (votes at the
    snapshot in BGOV, own size and notionals in USDC: the positions frozen when the vote opened, or
    now while it is pending, ``positions_at``) and whether the governed discount applies."""
    effects = get_proposal_effects(state, proposal)
    governance = state.governance
    frozen = proposal.status != "pending"     # frozen when the vote opened (a pending proposal: a live preview)
    disclosed = (state.proposal_exposures.get(proposal.proposal_id, ()) if frozen
                 else exposure.disclose(state, effects, proposal.snapshot_height))
    delegates = []
    for d in disclosed:
        delegates.append({"delegate": d.delegate, "votes": format_decimal(d.votes, votes.BGOV_DECIMALS),
                          "directly_exposed": d.directly_exposed,
                          "markets": [{"market": m.market, "effect": m.effect,
                                       "own_size": size_text(state.markets[m.market], m.own_size),
                                       "own_notional": format_usdc(m.own_notional),
                                       "delegated_notional": format_usdc(m.delegated_notional),
                                       "delegators": m.delegators} for m in d.markets]})
    return {"height": state.height, "proposal_id": proposal.proposal_id, "number": proposal.number,
            "risk_class": proposal.risk_class, "snapshot_height": proposal.snapshot_height,
            "positions_at": "snapshot" if frozen else "now",
            "markets": exposure.changed_markets(state, effects), "delegates": delegates,
            "discount": {"exposed_vote_weight": format_ppm(governance.exposed_vote_weight_ppm),
                         "threshold": format_usdc(governance.exposure_threshold_usdc),
                         "applies": proposal.risk_class == "critical" and governance.exposed_vote_weight_ppm < PPM}}


def ratio_text(value: Any) -> str:
    """A ratio (``Fraction``, float) as a decimal string with 6 decimals, rounded down."""
    return format_ppm(int(value * 1_000_000))


def describe_stress_gate(state: State, proposal: Proposal) -> dict[str, Any]:
    """The council's stress gate on a proposal, read with ``bastion.core.governance.council``: whether it
    ``applies`` (risk_increasing, critical), every member's latest attestation (``valid``: a fresh
    pass since queueing by a current member, ``council.is_attestation_valid``), the valid passes per
    report hash, the best hash (most passes, the smaller hash on a tie) against the threshold, and
    ``open``: an ``execute`` now would pass the gate (``council.check_stress_gate``; always true
    where the gate does not apply; false too while a counter-report holds it), and the
    ``counter_reports`` contesting it (``bastion.core.governance.counter_reports``)."""
    counts = council.count_stress_passes(state, proposal)
    best = min(counts.items(), key=lambda item: (-item[1], item[0]), default=(None, 0))
    try:
        council.check_stress_gate(state, proposal)
        is_open = True
    except ProtocolError:
        is_open = False
    attestations = state.attestations.get(proposal.proposal_id, {})
    registered = {r["report_hash"]: {key: value for key, value in r.items() if key != "report_hash"}
                  for r in council.describe_council(state)["stress_reports"]
                  if r["report_hash"] in {a.report_hash for a in attestations.values()}}
    return {"applies": proposal.risk_class in council.GATED_CLASSES, "threshold": state.council.threshold,
            "registered": dict(sorted(registered.items())),
            "report_hash": best[0], "passes": best[1], "open": is_open,
            "passes_by_report": dict(sorted(counts.items())),
            "counter_reports": describe_counter_reports(state, proposal.proposal_id),
            "attestations": [{"member": member, "report_hash": a.report_hash, "verdict": a.verdict,
                              "time": format_iso_ms(a.attested_ms), "height": a.height,
                              "current_member": council.is_council_member(state, member),
                              "valid": council.is_council_member(state, member)
                              and council.is_attestation_valid(state, proposal, a)}
                             for member, a in attestations.items()]}


def describe_participation(state: State, proposal: Proposal) -> dict[str, Any] | None:
    """Turnout and delegate participation at the proposal's snapshot
    (``transparency.get_proposal_participation``); None while the snapshot is ahead."""
    if proposal.snapshot_height > state.height:
        return None
    p = transparency.get_proposal_participation(state, proposal.proposal_id)

    def bgov(units: int) -> str:
        return format_decimal(units, votes.BGOV_DECIMALS)

    return {"snapshot_height": p.snapshot_height, "votes_cast": bgov(p.votes_cast),
            "total_supply": bgov(p.total_supply), "delegated_supply": bgov(p.delegated_supply),
            "turnout_of_supply": ratio_text(p.turnout_of_supply),
            "turnout_of_delegated": ratio_text(p.turnout_of_delegated),
            "delegates": p.delegates, "delegates_voted": p.delegates_voted, "voted_power": bgov(p.voted_power),
            "voted_power_share": ratio_text(p.voted_power_share), "quorum_votes": bgov(p.quorum_votes),
            "largest_delegate_votes": bgov(p.largest_delegate_votes), "quorum_alone": p.quorum_alone}


def describe_guardian_state(state: State) -> dict[str, Any]:
    """The guardian (``bastion.presentation.describe_guardian``: address, expiry, pauses in force, pause
    keys used this term), whether its power has lapsed, and the governed pause limits."""
    guardian = state.guardian
    return {"height": state.height, **describe_guardian(state),
            "expired": guardian.expires_ms is not None and state.time_ms >= guardian.expires_ms,
            "max_pause_s": state.governance.guardian_max_pause_ms // 1_000,
            "unpause_grace_s": state.governance.guardian_unpause_grace_ms // 1_000}


def describe_rollouts(state: State) -> dict[str, Any]:
    """Every staged rollout (``state.rollouts``, creation order; ``bastion.presentation.describe_rollout``)."""
    return {"height": state.height, "rollouts": [describe_rollout(state, r) for r in state.rollouts.values()]}


def describe_council_state(state: State) -> dict[str, Any]:
    """The council (``council.describe_council``): members, threshold, steward bounds, the
    attestations, steward cooldowns and pending approvals."""
    return {"height": state.height, **council.describe_council(state)}


def describe_param_history(state: State) -> list[dict[str, Any]]:
    return [{"name": e.name, "old": e.old, "new": e.new, "height": e.height,
             "source": {"kind": e.source.kind, "ref": e.source.ref, "number": e.source.number}}
            for e in state.param_history]


def describe_concentration(state: State) -> dict[str, Any]:
    """Voting-power concentration now (``bastion.core.votes.compute_concentration``); ratios as
    decimal strings with 6 decimals (rounded down)."""
    powers = votes.get_voting_powers(state)
    metrics = votes.compute_concentration(powers.values())

    return {"height": state.height, "holders": metrics.holders,
            "total_votes": format_decimal(metrics.total, votes.BGOV_DECIMALS),
            "nakamoto_one_third": metrics.nakamoto_one_third, "nakamoto_one_half": metrics.nakamoto_one_half,
            "gini": ratio_text(metrics.gini), "hhi": ratio_text(metrics.hhi),
            "effective_voters": ratio_text(metrics.effective_voters), "top10_share": ratio_text(metrics.top10_share)}


def describe_status(state: State) -> dict[str, Any]:
    return {"chain_id": state.chain_id, "height": state.height, "time": format_iso_ms(state.time_ms),
            "state_hash": state.state_hash}
