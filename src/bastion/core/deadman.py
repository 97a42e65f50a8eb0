"""The dead-man's switch: ``schedule_cancel{time_ms | null}``, per owner.

A bot sends ``schedule_cancel`` with a block time a little ahead and keeps pushing it later while it
is alive; if it dies (or loses its connection), the protocol cancels everything it has open. The
rule (docs/protocol.md "Dead-man's switch"):

* the schedule belongs to the **owner** (the sender address), not to a subaccount: it covers all
  128 subaccounts, since a bot that dies dies for all of them;
* ``time_ms`` must be at least ``deadman_min_delay_ms`` after the block time of the transaction
  (``schedule_too_soon``); a later ``schedule_cancel`` replaces the time (refresh), ``null``
  clears it;
* at the end of the first block whose time is at or past ``time_ms``, the owner's resting orders,
  untriggered conditional orders and live TWAP orders are all cancelled (reason ``deadman``), in
  subaccount order, a ``scheduled_cancel`` event counts them (``complete`` true), and the schedule is
  spent;
* anti-abuse bounds: the switch fires at most ``deadman_max_triggers_per_day`` times per owner per UTC day of
  block time (a ``schedule_cancel`` once that many have fired today is ``too_many_scheduled_cancels``;
  clearing is always allowed), and the end-of-block step does bounded work: at most
  ``deadman_max_owners_per_block`` owners and ``deadman_max_orders_per_block`` orders,
  conditional orders and TWAPs per block. The others are still due and go in the next blocks, in
  order of their scheduled time, then owner address; an owner cut off by the order budget gets a
  ``scheduled_cancel`` with ``complete`` false and stays first (its switch stays armed, so a
  ``schedule_cancel`` in between stops the rest); the firing is counted once, when complete.

The due schedules are found through ``State.cancel_queue``, a heap of ``(time_ms, owner)`` entries
derived from the schedules (rebuilt from them by a snapshot): a refresh or a clear leaves its old
entry behind, skipped when popped because it no longer matches the owner's schedule, and the heap
is rebuilt from the schedules once stale entries outnumber live ones.
"""
from __future__ import annotations

import heapq
from typing import Any, Final

from bastion.core import events as ev
from bastion.core.errors import ProtocolError
from bastion.core.events import Events, emit
from bastion.core.messages import ScheduleCancel
from bastion.core.orders import remove_conditional_order, remove_order
from bastion.core.state import SUBACCOUNT_NUMBERS, CancelSchedule, State
from bastion.core.twap_orders import finish_twap

DAY_MS: Final = 86_400_000


def schedule_cancel(state: State, sender: str, msg: ScheduleCancel, events: Events) -> dict[str, Any]:
    """Set, move or (``time_ms`` null) clear the sender's dead-man's switch. Refusals:
    ``schedule_too_soon`` (less than ``bot_limits.deadman_min_delay_ms`` after the block time) and
    ``too_many_scheduled_cancels`` (the switch already fired ``bot_limits.deadman_max_triggers_per_day``
    times today)."""
    record = state.cancel_schedules.get(sender)
    if msg.time_ms is None:
        if record is not None and record.time_ms is not None:
            record.time_ms = None
            state.touch(("cancel_schedule", sender))
            emit(events, ev.CancelScheduled, owner=sender, time_ms=None)
        return {"time_ms": None}
    limits = state.bot_limits
    if msg.time_ms < state.time_ms + limits.deadman_min_delay_ms:
        raise ProtocolError("schedule_too_soon", f"time_ms must be at least {limits.deadman_min_delay_ms} ms after "
                            f"the block time {state.time_ms}", field="time_ms")
    day = state.time_ms // DAY_MS
    fired = record.triggers if record is not None and record.day == day else 0
    if fired >= limits.deadman_max_triggers_per_day:
        raise ProtocolError("too_many_scheduled_cancels", f"the dead-man's switch fired {fired} times today, at most "
                            f"{limits.deadman_max_triggers_per_day} a day; try again after 00:00 UTC", field="time_ms")
    if record is None:
        record = state.cancel_schedules[sender] = CancelSchedule(None, day, 0)
    record.time_ms = msg.time_ms
    state.touch(("cancel_schedule", sender))
    queue = state.cancel_queue
    heapq.heappush(queue, (msg.time_ms, sender))
    if len(queue) > 2 * len(state.cancel_schedules) + 16:  # mostly stale entries: rebuild
        state.cancel_queue = rebuild_cancel_queue(state.cancel_schedules)
    emit(events, ev.CancelScheduled, owner=sender, time_ms=msg.time_ms)
    return {"time_ms": msg.time_ms}


def rebuild_cancel_queue(schedules: dict[str, CancelSchedule]) -> list[tuple[int, str]]:
    """The heap of due times, from the schedules (derived data)."""
    queue = [(record.time_ms, owner) for owner, record in schedules.items() if record.time_ms is not None]
    heapq.heapify(queue)
    return queue


def run_scheduled_cancels(state: State, events: Events) -> None:
    """End-of-block step: fire the dead-man's switches whose time has come, within the block's budget
    (at most ``bot_limits.deadman_max_owners_per_block`` owners and ``deadman_max_orders_per_block``
    orders; one comparison when none is due). An owner whose orders outlast the budget stays first in
    the queue and its switch goes on firing in the next block."""
    queue = state.cancel_queue
    now = state.time_ms
    owners = 0
    if not queue or queue[0][0] > now:
        return
    max_owners, budget = state.bot_limits.deadman_max_owners_per_block, state.bot_limits.deadman_max_orders_per_block
    while queue and queue[0][0] <= now and owners < max_owners and budget > 0:
        time_ms, owner = queue[0]
        record = state.cancel_schedules.get(owner)
        if record is None or record.time_ms != time_ms:  # moved or cleared since: a stale entry
            heapq.heappop(queue)
            continue
        owners += 1
        day = now // DAY_MS
        firing = (record.triggers if record.day == day else 0) + 1
        cancelled, twaps, budget, complete = cancel_everything(state, owner, events, budget)
        if complete:
            heapq.heappop(queue)
            record.day, record.triggers, record.time_ms = day, firing, None
            state.touch(("cancel_schedule", owner))
        emit(events, ev.ScheduledCancel, owner=owner, time_ms=time_ms, cancelled=cancelled, twaps=twaps,
             triggers_today=firing, complete=complete)


def cancel_everything(state: State, owner: str, events: Events, budget: int) -> tuple[int, int, int, bool]:
    """Cancel up to ``budget`` of the owner's open things: resting orders, then untriggered
    conditional orders, subaccount by subaccount (each in placement order), then its live TWAP
    orders (by id). Returns the orders cancelled, the TWAPs ended, the budget left and whether
    nothing of the owner is left open."""
    cancelled = 0
    for number in SUBACCOUNT_NUMBERS:
        sub = state.subaccounts.get((owner, number))
        if sub is None:
            continue
        for order_id, ticker in list(sub.orders.items())[:budget]:
            remove_order(state, state.markets[ticker], order_id, "deadman", events)
            cancelled += 1
            budget -= 1
        for order_id in list(sub.conditional_orders)[:budget]:
            remove_conditional_order(state, order_id, "deadman", events)
            cancelled += 1
            budget -= 1
        if budget == 0 and (sub.orders or sub.conditional_orders):
            return cancelled, 0, 0, False
    twaps = [twap for twap in state.twap_orders.values() if twap.owner == owner]
    for twap in twaps[:budget]:
        finish_twap(state, twap, "deadman", events)
    ended = min(len(twaps), budget)
    return cancelled, ended, budget - ended, ended == len(twaps)
