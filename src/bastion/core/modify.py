"""Order modification: ``modify_order``, an atomic cancel-replace of one resting order.

The order is named by exactly one of ``order_id`` and ``client_id``; ``size`` is the new open
size (what rests after the change) and ``price`` the new limit price, each defaulting to the
order's current one. What happens (docs/protocol.md "Order modify"):

* **same price, smaller size**: the order is reduced in place and keeps its order id and its
  place in the queue (a partial cancel: no margin or market-status check, as for a cancel);
* **anything else** (a new price, or a larger size): the order loses its priority. The new terms
  (the order's side, time in force, good-til time, reduce-only flag, self-trade mode and client
  id, with the new size and price) are judged exactly as a fresh ``place_order`` would be
  (``orders.check_order`` with the book, so post-only crossing, margin after a full fill at the
  new price, market status and guardian pauses, and the anti-spam limits, not counting the order
  being replaced). Only if they pass is the old order cancelled (``order_cancelled``, reason
  ``modified``) and the new one submitted with the next order id, matching first if it crosses.

A refused modify changes nothing: the original order rests as it was. Every accepted modify
emits ``order_modified`` (old and new id, price and size, and whether the priority was kept).
Conditional (untriggered) orders are not modified: cancel and place them again.
"""
from __future__ import annotations

from typing import Any

from bastion.core import events as ev
from bastion.core.accounts import get_market, get_own_subaccount
from bastion.core.enums import OrderType
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.events import Events, emit
from bastion.core.messages import ModifyOrder
from bastion.core.orders import (
    check_order, check_order_limits, parse_order_price, parse_order_size, remove_order, submit_order,
)
from bastion.core.state import OrderTerms, State


def modify_order(state: State, sender: str, msg: ModifyOrder, events: Events) -> dict[str, Any]:
    """Change a resting order's size and/or price (the module docstring). Refusals, all before any
    change: ``invalid_subaccount``, ``subaccount_not_found``, ``unknown_market``, ``invalid_message``
    (not exactly one of the ids, or neither size nor price), ``order_not_found`` (no resting order of
    this subaccount on this market by that id), ``non_positive_size``, ``size_below_minimum``,
    ``size_above_maximum``, ``non_positive_price``, ``order_unchanged``, the decimal codes, and for a
    replacement every refusal of ``place_order``'s account and book checks (``market_not_trading``,
    ``market_reduce_only``, ``market_paused_by_guardian``, ``reduce_only_would_increase``,
    ``post_only_would_cross``, ``insufficient_margin``, ``order_below_min_notional``,
    ``too_many_open_orders``...)."""
    sub = get_own_subaccount(state, sender, msg.subaccount)
    market = get_market(state, msg.market)
    if (msg.client_id is None) == (msg.order_id is None):
        raise ProtocolError("invalid_message", "give exactly one of client_id and order_id", field="order_id")
    if msg.size is None and msg.price is None:
        raise ProtocolError("invalid_message", "give the new size, the new price or both", field="size")
    order_id = sub.client_ids.get(msg.client_id) if msg.client_id is not None else msg.order_id
    order = market.book.get(order_id) if order_id is not None and sub.orders.get(order_id) == market.ticker else None
    if order is None:
        raise ProtocolError("order_not_found", f"no resting order of this subaccount on {market.ticker} by that id "
                            "(untriggered conditional orders are cancelled and placed again, not modified)",
                            field="order_id" if msg.order_id is not None else "client_id")
    lots = order.remaining
    if msg.size is not None:
        lots = parse_order_size(market, msg.size)
    ticks = order.price
    if msg.price is not None:
        ticks = parse_order_price(market, msg.price)
    old_price, old_size = order.price, order.remaining
    if ticks == old_price and lots == old_size:
        raise ProtocolError("order_unchanged", "the new size and price are the order's own", field="size")
    if ticks == old_price and lots < old_size:  # a partial cancel: keeps its place in the queue
        market.book.reduce(order.order_id, old_size - lots)
        state.touch(("order", market.ticker, order.order_id))
        emit(events, ev.OrderModified, market=market.ticker, order_id=order.order_id, new_order_id=order.order_id,
             owner=sender, number=sub.number, client_id=order.client_id, old_price=old_price, price=ticks,
             old_size=old_size, size=lots, kept_priority=True)
        return {"order_id": order.order_id, "market": market.ticker, "kept_priority": True, "status": "open"}
    terms = OrderTerms(sender, sub.number, market.ticker, order.side, OrderType.LIMIT, lots, ticks,
                       order.time_in_force, order.good_til_ms, order.reduce_only, order.self_trade, order.client_id)
    # --- VALIDATE with the old order still resting: it is on the new order's side of the book, so
    # it changes neither what the new one crosses nor how it would fill; only its client id and its
    # place in the open-order count are the new order's
    check_order(state, terms, with_book=True, replacing=order.order_id)
    check_order_limits(state, terms, rests=True, replacing=True)
    # --- APPLY
    new_order_id = state.next_order_id  # what submit_order gives the new order
    emit(events, ev.OrderModified, market=market.ticker, order_id=order.order_id, new_order_id=new_order_id,
         owner=sender, number=sub.number, client_id=order.client_id, old_price=old_price, price=ticks,
         old_size=old_size, size=lots, kept_priority=False)
    remove_order(state, market, order.order_id, "modified", events)
    try:
        result = submit_order(state, terms, events)
    except ProtocolError as error:  # the same checks passed above, on a book that differs by a same-side order
        raise InvariantViolation(f"modify_order: the replacement was refused after validation: {error.code}") from error
    return {**result, "replaced_order_id": order.order_id, "kept_priority": False}
