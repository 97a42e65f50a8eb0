"""TWAP orders: a size bought or sold by the protocol in slices over a duration.

(Not to be confused with ``bastion.core.twap``, the oracle-price average for final settlement.)

``place_twap{subaccount, market, side, size, duration_ms, reduce_only?, max_slippage?}`` is judged
like an IOC order of the whole size at the slippage guard price (``orders.check_order`` without
the book: market status, guardian pauses, margin mode, reduce-only, margin after a full fill at
that price; and the minimum notional of the anti-spam limits), takes the next order id as its
``twap_id`` and splits into ``slices = duration_ms // interval`` slices, ``interval`` being the
governed ``bot_limits.twap_interval_ms`` (30 s by default). The first slice is due at the end of the
block that placed it, each next one an interval after the previous one was due (``start_ms + k *
interval`` while the interval is unchanged; a governed change applies from the next slice on).
The rule (docs/protocol.md "TWAP orders"):

* **size**: slice ``k`` aims at a cumulative fill of ``floor(size * (k + 1) / slices)`` (the size
  spread evenly in exact integers; the last slice's target is the whole size), so it tries that
  target minus what has filled so far: an unfilled part **carries forward** into the next slice,
  and what the last slice leaves is dropped (the TWAP ends);
* **price**: each slice is an IOC limit order at the market's oracle price moved by
  ``max_slippage`` against the trader (a buy at ``floor(oracle * (1 + s))``, a sell at
  ``ceil(oracle * (1 - s))``), submitted through ``orders.submit_order`` with a fresh order id,
  so it meets the same checks as any order at that moment (a refusal is a ``twap_slice`` event with
  its ``code`` and a fill of 0; the TWAP goes on). The anti-spam limits are judged once, at
  placement: a slice below the minimum notional still trades. A slice's client id is
  ``SLICE_CLIENT_ID_BASE + twap_id``, above every client id a trader may choose;
* **order**: ``execute_twap_slices`` runs at the end of each block, after the conditional orders
  trigger, over the live TWAPs in id order; a due TWAP trades one slice per block, at most
  ``bot_limits.twap_max_slices_per_block`` slices a block (the rest wait for the next block, still due);
* **end**: after its last slice, or as soon as the whole size has filled, the TWAP leaves the state
  (``twap_finished``, reason ``completed``); ``cancel_twap`` ends it at once (``cancelled``), and so
  does its owner's dead-man's switch (``deadman``, ``bastion.core.deadman``).

Bounds, governed (``state.bot_limits``, ``bastion.core.bot_limits``; defaults in brackets): a duration
from ``twap_min_duration_ms`` to ``twap_max_duration_ms`` (60 s to 24 h), at most
``twap_max_per_subaccount`` live TWAPs per subaccount (5), ``max_slippage`` above 0 and at most
``twap_max_slippage_ppm`` (0.5; default ``twap_default_slippage_ppm``, 0.03). They are judged at
placement: a live TWAP keeps its slice count and guard when they change.
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core import events as ev
from bastion.core.accounts import get_market, get_own_subaccount
from bastion.core.book import BUY
from bastion.core.enums import OrderType, SelfTrade, TimeInForce
from bastion.core.errors import ProtocolError
from bastion.core.events import Events, emit
from bastion.core.messages import CancelTwap, PlaceTwap
from bastion.core.orders import (
    MAX_CLIENT_ID, SIDE_NAMES, SIDES, check_order, check_order_limits, parse_order_size, submit_order,
)
from bastion.core.state import OrderTerms, State, TwapOrder
from bastion.core.units import format_ppm, parse_ppm

SLICE_CLIENT_ID_BASE: Final = MAX_CLIENT_ID + 1


def guard_price(oracle_ticks: int, side: int, slippage_ppm: int) -> int:
    """The worst price a slice accepts: the oracle price moved by ``slippage_ppm`` against the trader,
    rounded toward the oracle price (floor for a buy, ceiling for a sell; at least one tick)."""
    if side == BUY:
        return oracle_ticks * (1_000_000 + slippage_ppm) // 1_000_000
    return max(1, -(-oracle_ticks * (1_000_000 - slippage_ppm) // 1_000_000))


def slice_target(twap: TwapOrder, index: int) -> int:
    """The cumulative fill slice ``index`` (0-based) aims at: the size spread evenly, exactly."""
    return twap.lots * (index + 1) // twap.slices


def place_twap(state: State, sender: str, msg: PlaceTwap, events: Events) -> dict[str, Any]:
    """Accept a TWAP order (the module docstring). Refusals, before any change: ``invalid_subaccount``,
    ``subaccount_not_found``, ``unknown_market``, ``invalid_side``, ``non_positive_size``,
    ``size_below_minimum``, ``size_above_maximum``, ``twap_duration_out_of_range``,
    ``invalid_max_slippage``, ``too_many_twaps``, the decimal codes, and those of the order checks
    (``market_not_trading``, ``market_reduce_only``, ``market_paused_by_guardian``,
    ``isolated_market_requires_isolated_subaccount``, ``subaccount_isolated_to_other_market``,
    ``reduce_only_would_increase``, ``insufficient_margin``, ``order_below_min_notional``)."""
    sub = get_own_subaccount(state, sender, msg.subaccount)
    market = get_market(state, msg.market)
    side = SIDES.get(msg.side)
    if side is None:
        raise ProtocolError("invalid_side", "side must be 'buy' or 'sell'", field="side")
    lots = parse_order_size(market, msg.size)
    limits = state.bot_limits
    interval = limits.twap_interval_ms
    if not limits.twap_min_duration_ms <= msg.duration_ms <= limits.twap_max_duration_ms:
        raise ProtocolError("twap_duration_out_of_range", f"duration_ms must be {limits.twap_min_duration_ms} to "
                            f"{limits.twap_max_duration_ms} ms (slices every {interval} ms)", field="duration_ms")
    slippage = limits.twap_default_slippage_ppm
    if msg.max_slippage is not None:
        slippage = parse_ppm(msg.max_slippage, field="max_slippage")
        if not 0 < slippage <= limits.twap_max_slippage_ppm:
            raise ProtocolError("invalid_max_slippage", f"max_slippage must be above 0 and at most "
                                f"{format_ppm(limits.twap_max_slippage_ppm)}", field="max_slippage")
    live = sum(1 for t in state.twap_orders.values() if t.owner == sender and t.number == sub.number)
    if live >= limits.twap_max_per_subaccount:
        raise ProtocolError("too_many_twaps", f"subaccount {sub.number} has {live} live TWAP orders, "
                            f"at most {limits.twap_max_per_subaccount} are allowed", field="subaccount")
    twap_id = state.next_order_id
    terms = _slice_terms(sender, sub.number, market.ticker, side, lots,
                         guard_price(market.oracle_price, side, slippage), msg.reduce_only, twap_id)
    check_order(state, terms, with_book=False)
    check_order_limits(state, terms, rests=False)
    # --- APPLY
    state.next_order_id += 1
    state.touch(("global",))
    slices = msg.duration_ms // interval
    state.twap_orders[twap_id] = TwapOrder(twap_id, sender, sub.number, market.ticker, side, lots, msg.reduce_only,
                                           slippage, state.time_ms, slices, next_slice_ms=state.time_ms)
    state.touch(("twap_order", twap_id))
    emit(events, ev.TwapPlaced, twap_id=twap_id, market=market.ticker, owner=sender, number=sub.number,
         side=SIDE_NAMES[side], size=lots, duration_ms=msg.duration_ms, slices=slices, interval_ms=interval,
         reduce_only=msg.reduce_only, max_slippage_ppm=slippage)
    return {"twap_id": twap_id, "market": market.ticker, "slices": slices}


def cancel_twap(state: State, sender: str, msg: CancelTwap, events: Events) -> dict[str, Any]:
    """Stop one of the sender's live TWAP orders. Refusal: ``twap_not_found`` (no live TWAP of the
    sender by that id: unknown, finished, or another owner's)."""
    twap = state.twap_orders.get(msg.twap_id)
    if twap is None or twap.owner != sender:
        raise ProtocolError("twap_not_found", f"no live TWAP order {msg.twap_id} of the sender", field="twap_id")
    finish_twap(state, twap, "cancelled", events)
    return {"twap_id": twap.twap_id, "market": twap.market, "filled": twap.filled}


def finish_twap(state: State, twap: TwapOrder, reason: str, events: Events) -> None:
    """Take a TWAP order out of the state, with its ``twap_finished`` event."""
    del state.twap_orders[twap.twap_id]
    state.touch(("twap_order", twap.twap_id))
    emit(events, ev.TwapFinished, twap_id=twap.twap_id, market=twap.market, owner=twap.owner, number=twap.number,
         size=twap.lots, filled=twap.filled, slices_done=twap.slices_done, reason=reason)


def execute_twap_slices(state: State, events: Events) -> None:
    """End-of-block step: one slice of each due TWAP order, in id order, at most
    ``bot_limits.twap_max_slices_per_block`` in all (nothing to do, nothing spent, without live TWAPs)."""
    if not state.twap_orders:
        return
    budget = state.bot_limits.twap_max_slices_per_block
    now = state.time_ms
    for twap in [t for t in state.twap_orders.values() if t.next_slice_ms <= now]:
        if budget == 0:
            break
        budget -= 1
        run_slice(state, twap, events)


def run_slice(state: State, twap: TwapOrder, events: Events) -> None:
    """Trade the TWAP's next slice as an IOC order at the slippage guard (the module docstring)."""
    index = twap.slices_done
    lots = slice_target(twap, index) - twap.filled
    market = state.markets[twap.market]
    price = guard_price(market.oracle_price, twap.side, twap.slippage_ppm)
    order_id: int | None = None
    filled = 0
    code: str | None = None
    if lots > 0:
        order_id = state.next_order_id
        state.next_order_id += 1
        state.touch(("global",))
        terms = _slice_terms(twap.owner, twap.number, twap.market, twap.side, lots, price, twap.reduce_only,
                             twap.twap_id)
        placed: Events = []
        try:
            filled = submit_order(state, terms, placed, order_id=order_id)["filled"]
        except ProtocolError as error:  # submit_order validates before it changes anything
            code = error.code
        events.extend(placed)
    twap.filled += filled
    twap.slices_done += 1
    # one interval after the slice's due time (not after the block that ran it: a slice delayed by the
    # per-block budget does not shift the ones after it), at the interval governed now
    twap.next_slice_ms += state.bot_limits.twap_interval_ms
    state.touch(("twap_order", twap.twap_id))
    emit(events, ev.TwapSlice, twap_id=twap.twap_id, market=twap.market, owner=twap.owner, number=twap.number,
         slice=twap.slices_done, slices=twap.slices, order_id=order_id, price=price, size=lots,
         filled=filled, code=code)
    if twap.filled == twap.lots or twap.slices_done == twap.slices:
        finish_twap(state, twap, "completed", events)


def _slice_terms(owner: str, number: int, ticker: str, side: int, lots: int, ticks: int, reduce_only: bool,
                 twap_id: int) -> OrderTerms:
    return OrderTerms(owner, number, ticker, side, OrderType.LIMIT, lots, ticks, TimeInForce.IOC, None, reduce_only,
                      SelfTrade.CANCEL_RESTING, SLICE_CLIENT_ID_BASE + twap_id)
