"""Order placement, cancellation and matching (DESIGN.md section 5).

``place_order`` validates the whole message first (grid, market status and guardian pauses
(``guardian.check_market_open``), margin mode, reduce-only, post-only, margin after a hypothetical full fill at the
limit price, the anti-spam limits (``check_order_limits``), fill-or-kill liquidity) and
only then assigns an order id and matches. Matching walks the book in price-time priority at the
makers' prices; ``_Matcher.decide`` judges each proposed fill:

1. self-trade prevention (cancel resting | cancel taking | decrement both);
2. reduce-only clipping for both sides, and the reduce-only/stale market rule (a guardian
   ``reduce_only`` pause counts as the reduce-only status);
3. the market's open-interest cap;
4. margin for the maker (a maker that would breach is cancelled and matching goes on) and then
   the taker (matching stops);

and applies the fill: funding settled, balances and positions moved, fees charged, events
emitted. Fill-or-kill runs the same ``decide`` once as a dry run over an overlay of hypothetical
changes, so the real run only starts when it will fill completely.
"""
from __future__ import annotations

import heapq
from typing import Any, Final

from bastion.core import cross_promotion, events as ev, guardian, maker_rewards, staking
from bastion.core.accounts import change_position, get_market, get_own_subaccount, settle_funding
from bastion.core.book import BUY, FILL_CANCEL_MAKER as REMOVE_MAKER, FILL_STOP as STOP, SELL, Order
from bastion.core.enums import (
    CONDITIONAL_ORDER_TYPES, ORDER_TYPES, RESTING_TIME_IN_FORCE, SELF_TRADE_MODES, TIME_IN_FORCE, TRADING,
    UNDERLYING_ORDER_TYPES, FundFlow, OrderType, SelfTrade, TimeInForce,
)
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.events import Events, emit
from bastion.core.margin import (
    Risk, cost_change, get_net_collateral, get_subaccount_risk, is_valid_update, open_interest_change,
)
from bastion.core.messages import CancelAll, CancelOrder, PlaceOrder
from bastion.core.params import OrderLimitParams, open_order_limit
from bastion.core.state import (
    CROSS, ISOLATED, REDUCE_ONLY, ConditionalOrder, Market, OrderTerms, State, Subaccount,
)
from bastion.core.timefmt import parse_iso_ms
from bastion.core.units import fee_for, format_decimal, format_usdc, parse_decimal, parse_usdc, ppm_of_down
from bastion.risk_model import notional


SIDES: Final = {"buy": BUY, "sell": SELL}
SIDE_NAMES: Final = ("buy", "sell")
MAX_CLIENT_ID: Final = 2**32 - 1
MAX_OPEN_ORDER_TIERS: Final = 16


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def fill_notional(market: Market, lots: int, ticks: int) -> int:
    """The value in micro-USDC of ``lots`` at ``ticks`` on ``market``'s grids (``risk_model.notional``)."""
    return notional(lots, ticks, size_decimals=market.size_decimals, price_decimals=market.price_decimals)


# --------------------------------------------------------------------------------------- placement
def place_order(state: State, sender: str, msg: PlaceOrder, events: Events) -> dict[str, Any]:
    """Validate a ``place_order``; submit it to the book now, or keep a conditional order untriggered.

    Refusals, all before any change: from the message and the market's grid (``parse_order``)
    ``invalid_side``, ``invalid_order_type``, ``invalid_time_in_force``, ``invalid_self_trade``,
    ``invalid_client_id``, ``invalid_good_til``, ``missing_field``, ``invalid_field``,
    ``non_positive_size``, ``non_positive_price``, ``size_below_minimum``, ``size_above_maximum``
    (and ``unknown_market``, ``invalid_subaccount``, ``subaccount_not_found``, the decimal codes);
    from the account and the book (``check_order``) ``market_not_trading``, ``market_reduce_only``,
    ``market_paused_by_guardian``, ``isolated_market_requires_isolated_subaccount``,
    ``subaccount_isolated_to_other_market``, ``duplicate_client_id``, ``reduce_only_would_increase``,
    ``post_only_would_cross`` and ``insufficient_margin`` (after a full fill at the limit price);
    from the anti-spam limits (``check_order_limits``) ``order_below_min_notional`` and
    ``too_many_open_orders``; at matching ``fok_not_filled``."""
    terms, trigger_ticks = parse_order(state, sender, msg)
    if trigger_ticks is None:
        return submit_order(state, terms, events)
    check_order(state, terms, with_book=False)  # post-only crossing and fill-or-kill are judged at the trigger
    check_order_limits(state, terms, rests=True)
    return add_conditional_order(state, msg.order_type, trigger_ticks, terms, events)


def parse_order(state: State, sender: str, msg: PlaceOrder) -> tuple[OrderTerms, int | None]:
    """The message's terms on its market's grid and its trigger price in ticks (None unless
    conditional): every check that depends only on the message, the market's grid and the time."""
    get_own_subaccount(state, sender, msg.subaccount)
    market = get_market(state, msg.market)
    side = SIDES.get(msg.side)
    if side is None:
        raise ProtocolError("invalid_side", "side must be 'buy' or 'sell'", field="side")
    conditional = msg.order_type in CONDITIONAL_ORDER_TYPES
    if msg.order_type not in ORDER_TYPES and not conditional:
        raise ProtocolError("invalid_order_type", f"unknown order type {msg.order_type!r}", field="order_type")
    order_type = UNDERLYING_ORDER_TYPES.get(msg.order_type, msg.order_type)
    if msg.trigger_price is not None and not conditional:
        raise ProtocolError("invalid_field", "trigger_price is only for conditional orders", field="trigger_price")
    if msg.trigger_price is None and conditional:
        raise ProtocolError("missing_field", f"a {msg.order_type} order needs trigger_price", field="trigger_price")
    tif = msg.time_in_force
    if tif not in TIME_IN_FORCE:
        raise ProtocolError("invalid_time_in_force", f"unknown time in force {tif!r}", field="time_in_force")
    if order_type == OrderType.MARKET and tif not in (TimeInForce.IOC, TimeInForce.FOK):
        raise ProtocolError("invalid_time_in_force", f"a {msg.order_type} order must be ioc or fok",
                            field="time_in_force")
    if msg.self_trade not in SELF_TRADE_MODES:
        raise ProtocolError("invalid_self_trade", f"unknown self-trade mode {msg.self_trade!r}", field="self_trade")
    lots = parse_order_size(market, msg.size)
    ticks = parse_order_price(market, msg.price)
    trigger_ticks = None
    if conditional:
        trigger_ticks = parse_decimal(msg.trigger_price, market.price_decimals, field="trigger_price")
        if trigger_ticks <= 0:
            raise ProtocolError("non_positive_price", "trigger_price must be positive", field="trigger_price")
    good_til_ms = None
    if tif == TimeInForce.GTT:
        if msg.good_til is None:
            raise ProtocolError("missing_field", "a gtt order needs good_til", field="good_til")
        good_til_ms = parse_iso_ms(msg.good_til, field="good_til")
        if good_til_ms <= state.time_ms:
            raise ProtocolError("invalid_good_til", "good_til is not in the future", field="good_til")
    elif msg.good_til is not None:
        raise ProtocolError("invalid_field", "good_til is only for gtt orders", field="good_til")
    if not 0 <= msg.client_id <= MAX_CLIENT_ID:
        raise ProtocolError("invalid_client_id", "client_id must be 0..2^32-1", field="client_id")
    terms = OrderTerms(sender, msg.subaccount, market.ticker, side, order_type, lots, ticks, tif, good_til_ms,
                       msg.reduce_only, msg.self_trade, msg.client_id)
    return terms, trigger_ticks


def parse_order_size(market: Market, size: str) -> int:
    """An order's size in lots, checked against the market's bounds (the one size rule of
    ``place_order``, ``modify_order`` and ``place_twap``). Raises ``non_positive_size``,
    ``size_below_minimum``, ``size_above_maximum`` or a decimal code."""
    lots = parse_decimal(size, market.size_decimals, field="size")
    if lots <= 0:
        raise ProtocolError("non_positive_size", "size must be positive", field="size")
    if lots < market.min_order_lots:
        raise ProtocolError("size_below_minimum", "size is below the market's minimum order size", field="size")
    if lots > market.max_order_lots:
        raise ProtocolError("size_above_maximum", f"size is above the market's maximum order size "
                            f"{format_decimal(market.max_order_lots, market.size_decimals)}", field="size")
    return lots


def parse_order_price(market: Market, price: str) -> int:
    """An order's limit price in ticks, positive. Raises ``non_positive_price`` or a decimal code."""
    ticks = parse_decimal(price, market.price_decimals, field="price")
    if ticks <= 0:
        raise ProtocolError("non_positive_price", "price must be positive", field="price")
    return ticks


def check_order(state: State, terms: OrderTerms, *, with_book: bool, replacing: int | None = None) -> bool:
    """Judge the terms against the account and the market (client id, margin mode, reduce-only,
    market status, placement margin) and, ``with_book``, the post-only rule; return whether the
    order crosses the book (always False without the book). ``replacing``: the id of the open order
    these terms replace (``modify_order``), whose client id they keep. Changes nothing."""
    sub = state.subaccounts[(terms.owner, terms.number)]
    market = state.markets[terms.market]
    if terms.client_id in sub.client_ids and sub.client_ids[terms.client_id] != replacing:
        raise ProtocolError("duplicate_client_id", f"client_id {terms.client_id} is already used by an open order",
                            field="client_id")
    if sub.mode == ISOLATED and sub.isolated_market != market.ticker:
        raise ProtocolError("subaccount_isolated_to_other_market",
                            f"subaccount is isolated to {sub.isolated_market}", field="market")
    side, lots, ticks = terms.side, terms.lots, terms.ticks
    position = sub.positions.get(market.ticker)
    position_size = position.size if position is not None else 0
    signed = lots if side == BUY else -lots
    reduces = position_size != 0 and _sign(signed) != _sign(position_size) and lots <= abs(position_size)
    if market.isolated_only and sub.mode == CROSS and not reduces:
        cross_promotion.check_cross_order(state, market, sub, signed)
    if terms.reduce_only and (position_size == 0 or _sign(signed) == _sign(position_size)):
        raise ProtocolError("reduce_only_would_increase", "a reduce-only order must reduce an open position",
                            field="reduce_only")
    if market.status not in TRADING:
        raise ProtocolError("market_not_trading", f"{market.ticker} is {market.status}", field="market")
    if (market.status == REDUCE_ONLY or market.stale) and not (reduces or terms.reduce_only):
        reason = "stale oracle" if market.stale else "reduce-only status"
        raise ProtocolError("market_reduce_only", f"{market.ticker} accepts only reducing orders ({reason})",
                            field="market")
    guardian.check_market_open(state, market.ticker, reducing=reduces or terms.reduce_only)
    crosses = False
    if with_book:
        best = market.book.best_ask() if side == BUY else market.book.best_bid()
        crosses = best is not None and (best <= ticks if side == BUY else best >= ticks)
        if terms.time_in_force == TimeInForce.POST_ONLY and crosses:
            raise ProtocolError("post_only_would_cross", "a post-only order would take liquidity", field="price")
    if not (reduces or terms.reduce_only):
        fee_ppm = max(market.taker_fee_ppm, market.maker_fee_ppm, 0)
        quote = fill_notional(market, signed, ticks)
        net_collateral, initial, _ = get_subaccount_risk(
            state, sub, market, size_delta=signed, balance_delta=-quote - fee_for(abs(quote), fee_ppm),
            cost_delta=cost_change(state, market, position, signed, ticks))
        if net_collateral < initial:
            raise ProtocolError("insufficient_margin",
                                "after a full fill at the limit price the account would be below its initial margin",
                                field="size", net_collateral=net_collateral, initial_margin=initial)
    return crosses


# --------------------------------------------------------------------------------------- anti-spam limits
def check_order_limits(state: State, terms: OrderTerms, *, rests: bool, replacing: bool = False) -> None:
    """The anti-spam limits of a placement (``state.order_limits``, docs/protocol.md "Anti-spam"),
    judged once, when the order is placed (never again when a conditional order triggers, so a
    stop-loss placed within the limits always gets its chance), and never for the protocol's own
    liquidation orders (``bastion.core.liquidation`` does not come here):

    * ``order_below_min_notional``: an order that does not reduce the subaccount's position (a
      reduce-only order, or one on the other side of the position and at most its size) must be
      worth at least ``min_order_notional_usdc`` at the market's **oracle** price (not the limit
      price, which a spammer could choose far from the market). So a trader can always close a
      position of any size, however small.
    * ``too_many_open_orders``: an order that may rest (``gtc``, ``gtt``, ``post_only``, or any
      conditional order) needs room under the subaccount's open-order limit: its resting plus
      untriggered conditional orders must be fewer than ``open_order_limit`` of its equity (net
      collateral, as margin counts it). ``ioc``/``fok`` and market orders never rest and are never
      refused for it, so a trader can always close with one. An order ``replacing`` one of the
      subaccount's open orders (``modify_order``) does not count that one.
    """
    sub = state.subaccounts[(terms.owner, terms.number)]
    market = state.markets[terms.market]
    limits = state.order_limits
    position = sub.positions.get(market.ticker)
    position_size = position.size if position is not None else 0
    signed = terms.lots if terms.side == BUY else -terms.lots
    reduces = position_size != 0 and _sign(signed) != _sign(position_size) and terms.lots <= abs(position_size)
    if not (reduces or terms.reduce_only):
        value = fill_notional(market, terms.lots, market.oracle_price)
        if value < limits.min_order_notional_usdc:
            raise ProtocolError("order_below_min_notional",
                                f"the order is worth {format_usdc(value)} USDC at the oracle price; an order that "
                                f"does not reduce a position must be worth at least "
                                f"{format_usdc(limits.min_order_notional_usdc)} USDC", field="size")
    if not rests:
        return
    open_orders = len(sub.orders) + len(sub.conditional_orders) - replacing
    equity = get_net_collateral(state, sub)
    allowed, step = open_order_limit(limits, equity)
    if open_orders >= allowed:
        tier = "below the first tier" if step is None else f"tier from {format_usdc(step)} USDC"
        raise ProtocolError("too_many_open_orders",
                            f"subaccount {terms.number} has {open_orders} open orders; its equity "
                            f"{format_usdc(equity)} USDC ({tier}) allows {allowed} "
                            f"(at most {limits.max_open_orders} per subaccount)", field="subaccount",
                            open_orders=open_orders, allowed=allowed)


def parse_order_limits(obj: object, base: OrderLimitParams, path: str) -> OrderLimitParams:
    """A (partial) genesis ``order_limits`` section merged over ``base``: ``open_order_tiers`` (a
    list of ``{"min_equity": USDC, "max_open_orders": n}``, strictly ascending in equity, never
    fewer orders for more equity, at most ``MAX_OPEN_ORDER_TIERS``), ``max_open_orders`` (an
    integer >= 0) and ``min_order_notional`` (USDC). The same parser validates genesis and
    ``set_order_limits``; errors name the field path."""
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", f"{path} must be an object", field=path)
    for key in sorted(set(obj) - {"open_order_tiers", "max_open_orders", "min_order_notional"}):
        raise ProtocolError("unknown_field", f"{path} has no field {key!r}", field=f"{path}.{key}")
    tiers = [list(step) for step in base.open_order_tiers]
    if "open_order_tiers" in obj:
        tiers = _parse_open_order_tiers(obj["open_order_tiers"], f"{path}.open_order_tiers")
    max_open = base.max_open_orders
    if "max_open_orders" in obj:
        max_open = _count(obj["max_open_orders"], f"{path}.max_open_orders")
    min_notional = base.min_order_notional_usdc
    if "min_order_notional" in obj:
        min_notional = parse_usdc(obj["min_order_notional"], field=f"{path}.min_order_notional")
    return OrderLimitParams(tiers, max_open, min_notional)


def _count(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10**9:
        raise ProtocolError("invalid_field", f"{field} must be an integer in 0..10^9, got {value!r}", field=field)
    return value


def _parse_open_order_tiers(value: object, path: str) -> list[list[int]]:
    if not isinstance(value, list) or len(value) > MAX_OPEN_ORDER_TIERS:
        raise ProtocolError("invalid_field", f"{path} must be a list of at most {MAX_OPEN_ORDER_TIERS} tiers",
                            field=path)
    tiers: list[list[int]] = []
    for i, step in enumerate(value):
        spath = f"{path}[{i}]"
        if not isinstance(step, dict) or set(step) != {"min_equity", "max_open_orders"}:
            raise ProtocolError("invalid_field", f"{spath} must be {{\"min_equity\": USDC, \"max_open_orders\": n}}",
                                field=spath)
        equity = parse_usdc(step["min_equity"], field=f"{spath}.min_equity")
        count = _count(step["max_open_orders"], f"{spath}.max_open_orders")
        if tiers and (equity <= tiers[-1][0] or count < tiers[-1][1]):
            raise ProtocolError("invalid_field", f"{spath}: tiers must rise strictly in min_equity and never allow "
                                "fewer orders for more equity", field=spath)
        tiers.append([equity, count])
    return tiers


def format_order_limits(limits: OrderLimitParams) -> dict[str, Any]:
    """The genesis form of ``limits`` (``bastion scenario defaults``)."""
    return {"open_order_tiers": [{"min_equity": format_usdc(equity), "max_open_orders": count}
                                 for equity, count in limits.open_order_tiers],
            "max_open_orders": limits.max_open_orders,
            "min_order_notional": format_usdc(limits.min_order_notional_usdc)}


def submit_order(state: State, terms: OrderTerms, events: Events, *, order_id: int | None = None) -> dict[str, Any]:
    """The one way into the book: validate the terms against the account, the market and the book,
    then match and rest them. A fresh order (``order_id`` None) gets the next order id; a triggered
    conditional order keeps the id it got at placement."""
    # --- VALIDATE: nothing below mutates state until "APPLY"
    sub = state.subaccounts[(terms.owner, terms.number)]
    market = state.markets[terms.market]
    side, lots, ticks, tif = terms.side, terms.lots, terms.ticks, terms.time_in_force
    crosses = check_order(state, terms, with_book=True)
    if order_id is None:  # a fresh placement (a triggered conditional order passed them when placed)
        check_order_limits(state, terms, rests=tif in RESTING_TIME_IN_FORCE)
    matcher = _Matcher(state, market, sub, side, terms, events) if crosses else None
    if tif == TimeInForce.FOK and (matcher is None or matcher.dry_run(ticks, lots) < lots):
        raise ProtocolError("fok_not_filled", "a fill-or-kill order cannot be filled completely now", field="size")

    # --- APPLY
    fresh = order_id is None
    if order_id is None:
        order_id = state.next_order_id
        state.next_order_id += 1
        state.touch(("global",))
    book = market.book
    if matcher is None:  # nothing to match against (post-only orders never cross, checked above)
        consumed = filled = 0
        stopped = False
    else:
        if fresh:  # its terms, for the record (a triggered order's are in conditional_order_placed)
            emit(events, ev.OrderAccepted, market=market.ticker, order_id=order_id, owner=terms.owner,
                 number=terms.number, client_id=terms.client_id, side=SIDE_NAMES[side],
                 order_type=terms.order_type, time_in_force=tif, price=ticks, size=lots,
                 reduce_only=terms.reduce_only)
        matcher.order_id = order_id
        consumed, stopped = book.match(side, ticks, lots, matcher.decide)
        filled = matcher.traded  # lots consumed by self-trade "decrement" are not fills
    remaining = lots - consumed
    status = "filled" if remaining == 0 else "partially_filled" if consumed else "open"
    if remaining:
        if tif in RESTING_TIME_IN_FORCE and not stopped:
            order = Order(order_id, side, ticks, remaining, lots, terms.owner, terms.number, terms.client_id, tif,
                          terms.reduce_only, terms.good_til_ms, terms.self_trade, state.time_ms)
            book.add(order)
            sub.orders[order_id] = market.ticker
            sub.client_ids[terms.client_id] = order_id
            state.touch(("order", market.ticker, order_id))  # sub.orders is an index of the book, not hashed
            if terms.good_til_ms is not None:
                heapq.heappush(state.gtt_queue, (terms.good_til_ms, order_id, market.ticker))
            emit(events, ev.OrderPlaced, market=market.ticker, order_id=order_id, owner=terms.owner,
                 number=terms.number, client_id=terms.client_id, side=SIDE_NAMES[side],
                 price=ticks, size=remaining)
        else:
            status = "partially_filled" if consumed else "cancelled"
            reason = ((matcher and matcher.stop_reason)
                      or ("ioc_remainder" if tif in (TimeInForce.IOC, TimeInForce.FOK) else "crossing_remainder"))
            emit(events, ev.OrderCancelled, market=market.ticker, order_id=order_id, owner=terms.owner,
                 number=terms.number, client_id=terms.client_id, size=remaining,
                 reason=reason)
    result = {"order_id": order_id, "market": market.ticker, "filled": filled, "status": status}
    if consumed != filled:
        result["decremented"] = consumed - filled
    return result


def add_conditional_order(state: State, order_type: str, trigger_ticks: int, terms: OrderTerms,
                          events: Events) -> dict[str, Any]:
    """Keep a validated conditional order untriggered: it takes the next order id and reserves its
    client id now; a gtt one joins the expiry queue."""
    order_id = state.next_order_id
    state.next_order_id += 1
    state.touch(("global",))
    state.conditional_orders[order_id] = ConditionalOrder(order_id, order_type, trigger_ticks, state.time_ms, terms)
    sub = state.subaccounts[(terms.owner, terms.number)]
    sub.conditional_orders[order_id] = terms.market
    sub.client_ids[terms.client_id] = order_id
    state.touch(("conditional", order_id))
    if terms.good_til_ms is not None:
        heapq.heappush(state.gtt_queue, (terms.good_til_ms, order_id, terms.market))
    emit(events, ev.ConditionalOrderPlaced, market=terms.market, order_id=order_id, owner=terms.owner,
         number=terms.number, client_id=terms.client_id, order_type=order_type,
         side=SIDE_NAMES[terms.side], price=terms.ticks, size=terms.lots,
         trigger_price=trigger_ticks, time_in_force=terms.time_in_force,
         reduce_only=terms.reduce_only)
    return {"order_id": order_id, "market": terms.market, "status": "untriggered"}


_NO_CHANGE = (0, 0, 0)


class _Matcher:
    """Judges and applies the fills of one taker order; also its fill-or-kill dry run."""

    __slots__ = ("state", "market", "taker", "side", "msg", "events", "order_id", "stop_reason", "overlay",
                 "oi_overlay", "owner", "traded")

    def __init__(self, state: State, market: Market, taker: Subaccount, side: int, msg: OrderTerms,
                 events: Events) -> None:
        self.state = state
        self.market = market
        self.taker = taker
        self.owner = taker.owner
        self.side = side
        self.msg = msg
        self.events = events
        self.order_id = 0
        self.stop_reason = ""
        self.overlay: dict[tuple[str, str, int], list[int]] | None = None  # dry run: key -> [balance, size, cost]
        self.oi_overlay = 0
        self.traded = 0  # lots actually traded in the real run

    # -- reading through the overlay (empty in a real run, where changes are applied at once)
    def _size(self, sub: Subaccount) -> int:
        position = sub.positions.get(self.market.ticker)
        size = position.size if position is not None else 0
        if self.overlay is not None:
            size += self.overlay.get(sub.key, _NO_CHANGE)[1]
        return size

    def _risk(self, sub: Subaccount, size_delta: int = 0, balance_delta: int = 0, oi_delta: int = 0,
              ticks: int = 0) -> Risk:
        """The subaccount's risk after the pending (dry-run) changes plus ``size_delta`` lots at ``ticks``."""
        pending = self.overlay.get(sub.key, _NO_CHANGE) if self.overlay is not None else _NO_CHANGE
        cost_delta = pending[2]
        if size_delta:
            cost_delta = cost_change(self.state, self.market, sub.positions.get(self.market.ticker), size_delta,
                                     ticks, pending[1], pending[2])
        return get_subaccount_risk(self.state, sub, self.market, size_delta + pending[1], balance_delta + pending[0],
                                   oi_delta + self.oi_overlay, cost_delta)

    def dry_run(self, limit: int, lots: int) -> int:
        """How many lots the order would fill now, without changing anything."""
        self.overlay = {}
        filled = 0
        try:
            for maker in self.market.book.iter_crossing(self.side, limit):
                available = maker.remaining
                while available and filled < lots:
                    result = self.decide(maker, min(lots - filled, available))
                    if result == STOP:
                        return filled
                    if result == REMOVE_MAKER:
                        break
                    filled += result
                    available -= result
                if filled == lots:
                    break
            return filled
        finally:
            self.overlay = None
            self.oi_overlay = 0
            self.stop_reason = ""

    def decide(self, maker: Order, lots: int) -> int:
        """Judge (and in a real run apply) one proposed fill; the book's ``on_fill`` callback.

        Returns the lots consumed (> 0), ``REMOVE_MAKER`` or ``STOP``.
        """
        state, market = self.state, self.market
        overlay = self.overlay
        dry = overlay is not None
        taker = self.taker
        # 1. self-trade prevention
        if maker.owner == self.owner:
            mode = self.msg.self_trade
            if mode == SelfTrade.CANCEL_RESTING:
                if not dry:
                    self._cancel_maker(maker, "self_trade")
                return REMOVE_MAKER
            if mode == SelfTrade.CANCEL_TAKING:
                self.stop_reason = "self_trade"
                return STOP
            if not dry:
                self._decrement_maker(maker, lots)
            return lots
        maker_sub = state.subaccounts[(maker.owner, maker.number)]
        taker_delta_sign = 1 if self.side == BUY else -1
        # 2. reduce-only orders and reduce-only/stale markets: never increase or flip a position
        taker_size = self._size(taker)
        maker_size = self._size(maker_sub)
        restricted = market.status == REDUCE_ONLY or market.stale or guardian.is_reduce_only(state, market.ticker)
        if self.msg.reduce_only or restricted:
            cap = abs(taker_size) if taker_size * taker_delta_sign < 0 else 0
            if cap == 0:
                self.stop_reason = "reduce_only"
                return STOP
            lots = min(lots, cap)
        if maker.reduce_only or restricted:
            cap = abs(maker_size) if maker_size * taker_delta_sign > 0 else 0
            if cap == 0:
                if not dry:
                    self._cancel_maker(maker, "reduce_only")
                return REMOVE_MAKER
            lots = min(lots, cap)
        # 3. open-interest cap
        taker_delta = lots * taker_delta_sign
        oi_delta = open_interest_change(taker_size, taker_delta, maker_size, -taker_delta)
        open_interest = market.open_interest + (self.oi_overlay if dry else 0)
        if oi_delta > 0 and open_interest + oi_delta > market.max_open_interest_lots:
            lots = self._largest_fill_under_cap(taker_size, maker_size, taker_delta_sign, lots, open_interest)
            if lots == 0:
                self.stop_reason = "open_interest_cap"
                return STOP
            taker_delta = lots * taker_delta_sign
            oi_delta = open_interest_change(taker_size, taker_delta, maker_size, -taker_delta)
        # 4. margin, maker first
        quote = fill_notional(market, taker_delta, maker.price)  # signed: what the taker pays
        maker_fee = fee_for(abs(quote), market.maker_fee_ppm)
        taker_fee = fee_for(abs(quote), market.taker_fee_ppm)
        # the old risk is needed only when the new state is below initial margin
        maker_new = self._risk(maker_sub, -taker_delta, quote - maker_fee, oi_delta, maker.price)
        if maker_new[0] < maker_new[1] and not is_valid_update(self._risk(maker_sub), maker_new):
            if not dry:
                self._cancel_maker(maker, "maker_margin")
            return REMOVE_MAKER
        taker_new = self._risk(taker, taker_delta, -quote - taker_fee, oi_delta, maker.price)
        if taker_new[0] < taker_new[1] and not is_valid_update(self._risk(taker), taker_new):
            self.stop_reason = "taker_margin"
            return STOP
        if overlay is not None:
            for sub, delta, balance in ((taker, taker_delta, -quote - taker_fee),
                                        (maker_sub, -taker_delta, quote - maker_fee)):
                entry = overlay.setdefault(sub.key, [0, 0, 0])
                entry[2] = cost_change(state, market, sub.positions.get(market.ticker), delta, maker.price,
                                       entry[1], entry[2])
                entry[0] += balance
                entry[1] += delta
            self.oi_overlay += oi_delta
        else:
            apply_fill(state, market, taker, self.order_id, self.side, maker, maker_sub, lots, taker_delta, quote,
                       maker_fee, taker_fee, oi_delta, self.events)
            self.traded += lots
        return lots

    def _largest_fill_under_cap(self, taker_size: int, maker_size: int, sign: int, lots: int,
                                open_interest: int) -> int:
        """Largest fill whose open-interest increase fits under the cap (the increase is convex in size)."""
        headroom = self.market.max_open_interest_lots - open_interest
        low, high = 0, lots
        while low < high:
            mid = (low + high + 1) // 2
            if open_interest_change(taker_size, mid * sign, maker_size, -mid * sign) <= headroom:
                low = mid
            else:
                high = mid - 1
        return low

    def _cancel_maker(self, maker: Order, reason: str) -> None:
        sub = self.state.subaccounts[(maker.owner, maker.number)]
        drop_order(self.state, sub, maker, self.market.ticker, reason, self.events)

    def _decrement_maker(self, maker: Order, lots: int) -> None:
        sub = self.state.subaccounts[(maker.owner, maker.number)]
        take_from_maker(self.state, sub, maker, lots, self.market.ticker)
        emit(self.events, ev.SelfTradeDecrement, market=self.market.ticker, order_id=maker.order_id,
             taker_order_id=self.order_id, owner=maker.owner, size=lots)


def apply_fill(state: State, market: Market, taker: Subaccount, taker_order_id: int | None, side: int, maker: Order,
               maker_sub: Subaccount, lots: int, taker_delta: int, quote: int, maker_fee: int, taker_fee: int,
               oi_delta: int, events: Events, *, liquidation: bool | None = None,
               backstop: bool | None = None) -> None:
    """Settle one judged fill at the maker's price: funding, balances, positions (with cost), open
    interest, fees (the insurance share to the market's pool, the reward pool's share,
    ``maker_rewards.fund_pool``), the maker order's bookkeeping
    (``take_from_maker``), and a ``fill`` event (flagged ``liquidation`` or ``backstop`` when such
    a taker's)."""
    take_from_maker(state, maker_sub, maker, lots, market.ticker)
    settle_funding(state, taker, events)
    settle_funding(state, maker_sub, events)
    taker.balance -= quote + taker_fee
    maker_sub.balance += quote - maker_fee
    change_position(state, taker, market, taker_delta, maker.price)
    change_position(state, maker_sub, market, -taker_delta, maker.price)
    market.open_interest += oi_delta
    net_fee = taker_fee + maker_fee
    if net_fee < 0:
        raise InvariantViolation("maker rebate exceeds taker fee")
    pool = market.pool
    if pool in state.stake_pools:   # stakers or a replenishing fund (core.staking)
        insurance = ppm_of_down(net_fee, staking.fee_share_ppm(state, pool))
        staking.move_fund(state, pool, insurance, FundFlow.FEE)
    else:                           # the whole fund is protocol-owned: move_fund would only add
        insurance = ppm_of_down(net_fee, state.fees.insurance_share_ppm)
        state.insurance_funds[pool] += insurance
    rewards = maker_rewards.fund_pool(state, net_fee - insurance)  # the maker-reward pool share
    state.fees_account += net_fee - insurance - rewards
    state.touch(taker.key)
    state.touch(maker_sub.key)
    state.touch(market.key)
    state.touch(("global",))
    # the parties as dict displays (the type checker holds them to ev.FillParty; calling the
    # TypedDict would cost a call each on the hottest line of the order path)
    emit(events, ev.Fill, market=market.ticker, price=maker.price, size=lots, taker_side=SIDE_NAMES[side],
         to_insurance=insurance,
         maker={"owner": maker.owner, "number": maker.number, "order_id": maker.order_id, "fee": maker_fee},
         taker={"owner": taker.owner, "number": taker.number, "order_id": taker_order_id, "fee": taker_fee},
         liquidation=liquidation, backstop=backstop)


def forget_order(state: State, sub: Subaccount, order: Order, ticker: str) -> None:
    """Remove an order (already out of, or about to leave, the book) from its subaccount's indexes."""
    del sub.orders[order.order_id]
    del sub.client_ids[order.client_id]
    state.touch(("order", ticker, order.order_id))


def remove_order(state: State, market: Market, order_id: int, reason: str, events: Events) -> None:
    """Take a resting order out of the book and its subaccount, with an ``order_cancelled`` event."""
    order = market.book.remove(order_id)
    if order is None:
        raise InvariantViolation(f"order {order_id} indexed but not in the {market.ticker} book")
    drop_order(state, state.subaccounts[(order.owner, order.number)], order, market.ticker, reason, events)


def drop_order(state: State, sub: Subaccount, order: Order, ticker: str, reason: str, events: Events) -> None:
    """Forget an order that has left (or is leaving) the book, with its ``order_cancelled`` event."""
    forget_order(state, sub, order, ticker)
    emit(events, ev.OrderCancelled, market=ticker, order_id=order.order_id, owner=order.owner,
         number=order.number, client_id=order.client_id, size=order.remaining,
         reason=reason)


def take_from_maker(state: State, sub: Subaccount, maker: Order, lots: int, ticker: str) -> None:
    """Bookkeeping for ``lots`` the book is taking from a resting order: a fully taken order leaves
    its subaccount's indexes; a partly taken one changes its hashed ``remaining``."""
    if lots == maker.remaining:
        forget_order(state, sub, maker, ticker)
    else:
        state.touch(("order", ticker, maker.order_id))


def forget_conditional_order(state: State, order: ConditionalOrder) -> None:
    """Take an untriggered conditional order out of the state and free its client id (no event)."""
    del state.conditional_orders[order.order_id]
    sub = state.subaccounts[(order.terms.owner, order.terms.number)]
    del sub.conditional_orders[order.order_id]
    del sub.client_ids[order.terms.client_id]
    state.touch(("conditional", order.order_id))


def remove_conditional_order(state: State, order_id: int, reason: str, events: Events) -> None:
    """Cancel an untriggered conditional order, with an ``order_cancelled`` event."""
    order = state.conditional_orders[order_id]
    forget_conditional_order(state, order)
    terms = order.terms
    emit(events, ev.OrderCancelled, market=terms.market, order_id=order_id, owner=terms.owner,
         number=terms.number, client_id=terms.client_id, size=terms.lots,
         reason=reason, order_type=order.order_type)


# --------------------------------------------------------------------------------------- cancels
def cancel_order(state: State, sender: str, msg: CancelOrder, events: Events) -> dict[str, Any]:
    """Cancel one resting or untriggered conditional order, by client id or order id. Refusals:
    ``invalid_subaccount``, ``subaccount_not_found``, ``invalid_message`` (not exactly one of the
    two ids) and ``order_not_found``."""
    sub = get_own_subaccount(state, sender, msg.subaccount)
    if (msg.client_id is None) == (msg.order_id is None):
        raise ProtocolError("invalid_message", "give exactly one of client_id and order_id", field="order_id")
    order_id = sub.client_ids.get(msg.client_id) if msg.client_id is not None else msg.order_id
    if order_id is not None and order_id in sub.orders:
        remove_order(state, state.markets[sub.orders[order_id]], order_id, "cancelled", events)
    elif order_id is not None and order_id in sub.conditional_orders:
        remove_conditional_order(state, order_id, "cancelled", events)
    else:
        raise ProtocolError("order_not_found", "no such open order in this subaccount",
                            field="order_id" if msg.order_id is not None else "client_id")
    return {"order_id": order_id}


def cancel_all(state: State, sender: str, msg: CancelAll, events: Events) -> dict[str, Any]:
    """Cancel the subaccount's resting orders, then its untriggered conditional orders (of one market or all).
    Refusals: ``invalid_subaccount``, ``subaccount_not_found``, ``unknown_market``; no open order is no error."""
    sub = get_own_subaccount(state, sender, msg.subaccount)
    if msg.market is not None:
        get_market(state, msg.market)
    targets = [(oid, ticker) for oid, ticker in sub.orders.items() if msg.market in (None, ticker)]
    for order_id, ticker in targets:
        remove_order(state, state.markets[ticker], order_id, "cancelled", events)
    conditional = [oid for oid, ticker in sub.conditional_orders.items() if msg.market in (None, ticker)]
    for order_id in conditional:
        remove_conditional_order(state, order_id, "cancelled", events)
    return {"cancelled": len(targets) + len(conditional)}


def expire_orders(state: State, events: Events) -> None:
    """Remove good-til-time orders, resting or untriggered, whose time has come (block time >= good_til)."""
    queue = state.gtt_queue
    while queue and queue[0][0] <= state.time_ms:
        _, order_id, ticker = heapq.heappop(queue)
        market = state.markets[ticker]
        if order_id in market.book:
            remove_order(state, market, order_id, "expired", events)
        elif order_id in state.conditional_orders:
            remove_conditional_order(state, order_id, "expired", events)
