"""Conditional orders: stop and take-profit orders triggered by the oracle price (DESIGN.md section 5).

A conditional order is validated at placement like the order it will become (``orders.place_order``,
minus what depends on the book at trigger time: post-only crossing and fill-or-kill liquidity),
takes its order id and reserves its client id, and waits in ``State.conditional_orders``. The
trigger rule (dYdX v4), with ``oracle`` the market's oracle price of the block:

    =====================================  =====================  =====================
    order type                             buy triggers when      sell triggers when
    =====================================  =====================  =====================
    stop_market, stop_limit                oracle >= trigger      oracle <= trigger
    take_profit_market, take_profit_limit  oracle <= trigger      oracle >= trigger
    =====================================  =====================  =====================

``trigger_conditional_orders`` is the end-of-block step right after ``oracle.update_oracle_prices``:
in order id (placement) order over all markets, each untriggered order whose market is not stale
nor halted by a guardian pause (it waits, see ``bastion.core.guardian``) and whose condition holds leaves the
untriggered set and is submitted to the book as its underlying order (``*_market`` -> ``market``, ``*_limit`` ->
``limit``), keeping its order id, through
``orders.submit_order``, the same validation and matching as a fresh order. A rejection there
(margin, reduce-only, post-only, fill-or-kill, market status...) is a ``conditional_order_failed``
event with the stable code; the order is gone and nothing else changes.
"""
from __future__ import annotations

from typing import Any

from bastion.core import guardian
from bastion.core.book import BUY
from bastion.core.errors import ProtocolError
from bastion.core.orders import SIDE_NAMES, forget_conditional_order, submit_order
from bastion.core.state import ConditionalOrder, State

Events = list[dict[str, Any]]

STOP_ORDER_TYPES = ("stop_market", "stop_limit")


def is_triggered(order_type: str, side: int, trigger_ticks: int, oracle_ticks: int) -> bool:
    """The trigger rule (table in the module docstring): a stop buy and a take-profit sell trigger
    when the oracle price reaches the trigger price from below, the other two from above."""
    if (side == BUY) == (order_type in STOP_ORDER_TYPES):
        return oracle_ticks >= trigger_ticks
    return oracle_ticks <= trigger_ticks


def trigger_conditional_orders(state: State, events: Events) -> None:
    """End-of-block step: submit every conditional order whose trigger condition holds at the block's
    oracle price (never in a stale market or one the guardian halted), in order id order."""
    for order in list(state.conditional_orders.values()):
        market = state.markets[order.terms.market]
        if market.stale or guardian.is_market_halted(state, market.ticker) or not is_triggered(
                order.order_type, order.terms.side, order.trigger_ticks, market.oracle_price):
            continue
        trigger_order(state, order, market.oracle_price, events)


def trigger_order(state: State, order: ConditionalOrder, oracle_ticks: int, events: Events) -> None:
    """Take the order out of the untriggered set and submit it to the book with its order id."""
    terms = order.terms
    forget_conditional_order(state, order)  # frees its client id for the order it becomes
    ident = {"market": terms.market, "order_id": order.order_id, "owner": terms.owner, "number": terms.number,
             "client_id": terms.client_id}
    events.append({"type": "conditional_order_triggered", **ident, "order_type": order.order_type,
                   "side": SIDE_NAMES[terms.side], "trigger_price": order.trigger_ticks,
                   "oracle_price": oracle_ticks})
    placed: Events = []
    try:
        submit_order(state, terms, placed, order_id=order.order_id)
    except ProtocolError as error:  # submit_order validates before it changes anything
        events.append({"type": "conditional_order_failed", **ident, "code": error.code, "message": error.message})
        return
    events.extend(placed)
