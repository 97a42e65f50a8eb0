"""``POST /v1/preview/order``: what an order would do to an account, before it is signed.

``preview_order(state, ...)`` is a pure function of a ``State`` (the caller holds the node's lock).
It takes the order as placement judges it (DESIGN.md section 5: a hypothetical **full fill at the
limit price**, paying ``max(taker fee, maker fee, 0)``, exactly as ``core.orders.check_order``) and
returns:

* ``accepted``: what ``check_order`` says now (``rejection`` holds the code and message if not;
  the block that applies the order may still see another book or oracle price);
* ``before`` and ``after``: equity (TNC), initial and maintenance requirements, free collateral,
  and the liquidation price of every position (``bastion.api.risk``);
* ``isolation``: whether to trade it from an isolated subaccount instead, and the comparison;
* ``ui_requirements``: the market's governed UI requirements (``views.describe_ui_requirements``) and
  the order against them (below).

**Reduce-only.** The fill is capped as matching caps it (``reduce_only_cap``): a reduce-only order
(or any order in a reduce-only or stale market) fills at most the open position on the other side,
so ``fill_size`` (what the full fill would be) may be less than ``size`` (``capped`` is then true),
and ``notional``, ``fee`` and ``after`` are those of ``fill_size``. A reduce-only sell of 5 BTC
against a 0.17 BTC long closes the long: 0.17 fills, the rest never does.

**Isolation suggestion.** Suggested when the order adds risk (it is not reduce-only and does not
only reduce a position) and either

* ``dominates_maintenance``: after the fill, the order's market carries more than the market's
  governed ``isolation_threshold`` (``DOMINANCE_THRESHOLD_PPM``, 50%, by default) of the account's
  maintenance requirement while the account
  holds at least one other position - so a move of that one market would liquidate the others; or
* ``volatile_tier``: the market's liquidity tier has an initial margin of at least
  ``VOLATILE_TIER_IMF_PPM`` (10%: dYdX's small-cap, long-tail and safety tiers).

The comparison is always computed. *Cross*: the account after the fill; for each market, its
liquidation price and the move to it from the oracle (``(p_liq - oracle) / oracle``), the whole
account's equity being at risk. *Isolated*: the order alone in a fresh isolated subaccount funded
with ``proposed_amount`` (default: twice the position's initial requirement at the oracle price plus
the fee, rounded up to a whole USDC; a request may give its own ``isolated_amount``), so at most that
amount is at risk, and the rest of the account as it is minus that amount, with its own
liquidation prices. Isolation is never suggested for an order from a subaccount that is already
isolated (it is the isolated case).

**UI requirements** (issue 20, governed per market with ``set_ui_requirements``). The order's
``leverage_after`` is the account's after the fill: the notional of all its positions at the oracle
price over its equity (null when the equity is not positive, which counts as over any maximum).
When the market has a governed maximum, over the offered ``max_leverage`` (the governed one capped
by the tier's) the preview refuses the order: ``over_max_leverage`` is true,
``accepted`` false and ``rejection`` ``ui_max_leverage`` (a requirement on frontends, not a chain
rule: the chain would take the order); over ``confirm_above_leverage`` it sets
``confirmation_required``, which a frontend asks the trader for before signing. A reduce-only order,
or one that only reduces a position, is never refused or flagged (it lowers the leverage).

**Trading it isolated** (the trade page's "Trade isolated" button, ``Client.place_order_isolated``):
the answer says where and how, so that no client recomputes it. ``target_subaccount`` is chosen by
``find_isolation_target``:

1. the lowest-numbered subaccount of the owner, other than the order's, that is **isolated to this
   market and idle** (no position, no open or untriggered order) - typically one left funded by an
   earlier attempt whose order was refused: it is reused, and only what it lacks is moved;
2. otherwise the lowest-numbered **free** number: no subaccount yet, or one that is empty (zero
   balance, no position, no order), whatever its mode;
3. otherwise (all 128 in use) none: ``target_subaccount`` is null and ``setup`` empty.

``transfer_amount`` is ``amount`` minus what the target already holds (never below zero) and
``setup`` lists the messages to sign and send, in this order, before the order itself (a
``place_order`` from ``target_subaccount``): a ``transfer`` of ``transfer_amount`` from the order's
subaccount to the target (left out when zero), then ``set_margin_mode`` isolated to the market
(left out when the target already is). Send them one by one, each after the previous one's commit
was ``ok`` (``POST /v1/tx?wait_ms``): the handlers check the target's state as left by the previous
step, so a batch could apply a later step after an earlier one was refused.
"""
from __future__ import annotations

from typing import Any

from bastion.api.risk import Holdings, compute_liquidation_ticks, compute_move_ppm, compute_totals, holdings_of
from bastion.api.views import (
    describe_ui_requirements, get_market_or_404, price_text, size_text, tier_max_leverage_ppm,
)
from bastion.core import guardian
from bastion.core.errors import ProtocolError
from bastion.core.governance.ui_rules import effective_ui_requirements
from bastion.core.margin import compute_position_risk, cost_after
from bastion.core.messages import PlaceOrder
from bastion.core.orders import check_order, fill_notional, parse_order
from bastion.core.state import CROSS, ISOLATED, REDUCE_ONLY, SUBACCOUNT_NUMBERS, Market, State, Subaccount
from bastion.core.units import PPM, USDC, fee_for, format_ppm, format_usdc, parse_decimal, parse_usdc

__all__ = ["DOMINANCE_THRESHOLD_PPM", "VOLATILE_TIER_IMF_PPM", "find_isolation_target", "preview_order",
           "reduce_only_cap"]

DOMINANCE_THRESHOLD_PPM = 500_000
VOLATILE_TIER_IMF_PPM = 100_000


def _describe_holdings(state: State, holdings: Holdings) -> dict[str, Any]:
    net_collateral, initial, maintenance, per_market = compute_totals(state, holdings)
    markets = []
    for ticker in sorted(holdings.sizes):
        market = state.markets[ticker]
        liquidation = compute_liquidation_ticks(state, holdings, ticker)
        move = compute_move_ppm(liquidation, market.oracle_price)
        markets.append({"market": ticker, "size": size_text(market, holdings.sizes[ticker]),
                        "maintenance_margin": format_usdc(per_market[ticker][2]),
                        "liquidation_price": price_text(market, liquidation),
                        "move_to_liquidation": None if move is None else format_ppm(move)})
    return {"equity": format_usdc(net_collateral), "initial_margin": format_usdc(initial),
            "maintenance_margin": format_usdc(maintenance), "free_collateral": format_usdc(net_collateral - initial),
            "positions": markets}


def is_idle(sub: Subaccount) -> bool:
    """No position, no open order and no untriggered conditional order: its margin mode may change."""
    return not (sub.positions or sub.orders or sub.conditional_orders)


def find_isolation_target(state: State, *, owner: str, source: int, market: str) -> Subaccount | int | None:
    """Where to trade ``market`` isolated (module docstring): an idle subaccount already isolated to
    ``market`` (returned as the ``Subaccount``), else the number of a free one (absent, or empty and
    idle), else None. The order's own subaccount ``source`` is never the target."""
    free = None
    for number in SUBACCOUNT_NUMBERS:
        if number == source:
            continue
        sub = state.subaccounts.get((owner, number))
        if sub is None or (sub.balance == 0 and is_idle(sub)):
            if free is None:
                free = number
            if sub is None:
                continue
        if sub.mode == ISOLATED and sub.isolated_market == market and is_idle(sub):
            return sub
    return free


def describe_isolation_setup(state: State, *, owner: str, source: int, market: str,
                             amount: int) -> dict[str, Any]:
    """``target_subaccount``, ``transfer_amount`` and the ``setup`` messages (module docstring)."""
    target = find_isolation_target(state, owner=owner, source=source, market=market)
    if target is None:
        return {"target_subaccount": None, "transfer_amount": format_usdc(0), "setup": []}
    reused = isinstance(target, Subaccount)
    number = target.number if isinstance(target, Subaccount) else target
    held = target.balance if isinstance(target, Subaccount) else 0  # a free subaccount holds nothing
    transfer = max(amount - held, 0)
    setup: list[dict[str, Any]] = []
    if transfer > 0:
        setup.append({"type": "transfer", "subaccount": source, "to_owner": owner, "to_subaccount": number,
                      "amount": format_usdc(transfer)})
    if not reused:
        setup.append({"type": "set_margin_mode", "subaccount": number, "mode": ISOLATED, "market": market})
    return {"target_subaccount": number, "transfer_amount": format_usdc(transfer), "setup": setup}


def reduce_only_cap(state: State, market: Market, position_size: int, signed: int, reduce_only: bool) -> int | None:
    """The most lots of an order that can ever fill, or None when matching does not cap it.

    Matching's reduce-only rule (``core.orders._Matcher.decide``, step 2): a reduce-only order,
    or any order in a market whose status is reduce-only, whose oracle is stale or that a guardian
    ``reduce_only`` pause covers, fills only against an open position on the other side, and never
    past it: at most ``abs(position_size)`` lots (0 without such a position). The rest of the order
    is cancelled when matching stops on it, or rests and can never fill past the position either."""
    restricted = market.status == REDUCE_ONLY or market.stale or guardian.is_reduce_only(state, market.ticker)
    if not (reduce_only or restricted):
        return None
    return abs(position_size) if position_size * signed < 0 else 0


def preview_order(state: State, *, owner: str, subaccount: int, market: str, side: str, size: str, price: str,
                  reduce_only: bool = False, isolated_amount: str | None = None) -> dict[str, Any]:
    """The effect of a full fill of a limit order at its price (module docstring)."""
    the_market = get_market_or_404(state, market)
    if side not in ("buy", "sell"):
        raise ProtocolError("invalid_side", "side must be 'buy' or 'sell'", field="side")
    lots = parse_decimal(size, the_market.size_decimals, field="size")
    ticks = parse_decimal(price, the_market.price_decimals, field="price")
    if lots <= 0 or ticks <= 0:
        raise ProtocolError("non_positive_size" if lots <= 0 else "non_positive_price",
                            "size and price must be positive", field="size" if lots <= 0 else "price")
    signed = lots if side == "buy" else -lots
    sub = state.subaccounts.get((owner, subaccount))

    # ACCEPTANCE: the placement rules, unchanged
    rejection = None
    if sub is None:
        rejection = {"code": "subaccount_not_found", "message": f"{owner} has no subaccount {subaccount}"}
    else:
        free_client_id = next(i for i in range(len(sub.client_ids) + 1) if i not in sub.client_ids)
        msg = PlaceOrder(subaccount=subaccount, market=market, side=side, size=size, price=price,
                         client_id=free_client_id, reduce_only=reduce_only)
        try:
            terms, _ = parse_order(state, owner, msg)
            check_order(state, terms, with_book=True)
        except ProtocolError as error:
            rejection = {"code": error.code, "message": error.message}

    # EFFECT on margin of a full fill at the limit price, capped as matching caps it
    before = holdings_of(state, sub)
    size_before = before.sizes.get(market, 0)
    cap = reduce_only_cap(state, the_market, size_before, signed, reduce_only)
    fill_lots = lots if cap is None else min(lots, cap)
    fill_signed = fill_lots if side == "buy" else -fill_lots
    quote = fill_notional(the_market, fill_signed, ticks)
    fee = fee_for(abs(quote), max(the_market.taker_fee_ppm, the_market.maker_fee_ppm, 0))
    cost_before = before.costs.get(market, 0)
    new_cost = cost_after(the_market, size_before, cost_before, fill_signed, ticks)
    after = before.changed(market, fill_signed, new_cost - cost_before, -quote - fee)
    reduces = size_before != 0 and (size_before > 0) != (signed > 0) and lots <= abs(size_before)

    # ISOLATION: the order alone in an isolated subaccount, against the account after it in cross
    _, imr_alone, _ = compute_position_risk(state, the_market, signed, the_market.open_interest, None, quote)
    proposed = -(-(2 * imr_alone + fee) // USDC) * USDC
    amount = proposed if isolated_amount is None else parse_usdc(isolated_amount, field="isolated_amount")
    isolated = Holdings(0).changed(market, signed, quote, amount - quote - fee)
    rest = Holdings(before.collateral - amount, dict(before.sizes), dict(before.costs), dict(before.imf_overrides))
    _, _, maintenance_after, per_market_after = compute_totals(state, after)
    market_maintenance = per_market_after[market][2] if market in per_market_after else 0
    share_ppm = market_maintenance * PPM // maintenance_after if maintenance_after else 0
    reasons = []
    adds_risk = not (reduce_only or reduces)
    from_cross = sub is None or sub.mode == CROSS  # an isolated subaccount already is the isolated case
    threshold = effective_ui_requirements(state, market).isolation_threshold_ppm
    if adds_risk and from_cross and share_ppm > threshold and len(set(after.sizes) - {market}) >= 1:
        reasons.append("dominates_maintenance")
    if adds_risk and from_cross and state.tiers[the_market.tier_id].initial_margin_ppm >= VOLATILE_TIER_IMF_PPM:
        reasons.append("volatile_tier")
    after_view = _describe_holdings(state, after)
    ui = _check_ui_requirements(state, the_market, after, adds_risk)
    if ui["over_max_leverage"] and rejection is None:
        rejection = {"code": "ui_max_leverage", "message": f"the account's leverage after this order would be over "
                     f"the {ui['max_leverage']}x that {market}'s governed UI requirements allow"}
    return {
        "height": state.height, "subaccount": subaccount, "market": market, "side": side,
        "size": size_text(the_market, lots), "price": price_text(the_market, ticks),
        "notional": format_usdc(abs(quote)), "fee": format_usdc(fee),
        "fill_size": size_text(the_market, fill_lots), "capped": fill_lots < lots,
        "accepted": rejection is None, "rejection": rejection,
        "before": _describe_holdings(state, before), "after": after_view,
        "isolation": {
            "suggested": bool(reasons), "reasons": reasons,
            "market_maintenance_share": format_ppm(share_ppm),
            "dominance_threshold": format_ppm(threshold),
            "volatile_tier_initial_margin": format_ppm(VOLATILE_TIER_IMF_PPM),
            "proposed_amount": format_usdc(proposed),
            "cross": {"collateral_at_risk": after_view["equity"], "positions": after_view["positions"]},
            "isolated": {"amount": format_usdc(amount), "collateral_at_risk": format_usdc(amount),
                         "order": _describe_holdings(state, isolated),
                         "rest": _describe_holdings(state, rest)},
            **describe_isolation_setup(state, owner=owner, source=subaccount, market=market, amount=amount),
        },
        "ui_requirements": ui,
    }


def _check_ui_requirements(state: State, market: Market, after: Holdings, adds_risk: bool) -> dict[str, Any]:
    """The market's UI requirements and the order against them (module docstring, "UI requirements")."""
    view = describe_ui_requirements(state, market)
    equity, _, _, per_market = compute_totals(state, after)
    exposure = sum(abs(value) for value, _, _ in per_market.values())
    leverage = exposure * PPM // equity if equity > 0 else None
    ui = effective_ui_requirements(state, market.ticker)
    max_ppm = min(ui.max_leverage_ppm, tier_max_leverage_ppm(state, market))
    over_max = adds_risk and ui.max_leverage_ppm > 0 and (leverage is None or leverage > max_ppm)
    confirm = adds_risk and ui.confirm_above_leverage_ppm > 0 and (
        leverage is None or leverage > ui.confirm_above_leverage_ppm)
    return {**view, "leverage_after": None if leverage is None else format_ppm(leverage),
            "over_max_leverage": over_max, "confirmation_required": confirm}
