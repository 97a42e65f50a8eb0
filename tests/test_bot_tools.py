"""The bot tools of issue 17 in the core: the dead-man's switch's bounds, the TWAP step's per-block
budget and a refused slice, and snapshots of a state holding live TWAPs and armed switches. The
golden scenarios ``modify_order``, ``deadman_switch`` and ``twap_slices`` hold the hand-worked cases."""
from __future__ import annotations

from builders import ALICE, BOB, BTC, GENESIS_TIME_MS, Chain, account, address, genesis, place_order, subaccount

from bastion.core import deadman, twap_orders
from bastion.core.book import BUY
from bastion.core.deadman import DAY_MS
from bastion.core.hashing import compute_state_hash_full
from bastion.core.params import BotLimitParams
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.transition import END_BLOCK_STEPS

# the genesis defaults of the governed bot limits (bastion.core.bot_limits; tests/test_bot_limits.py changes them)
MAX_TRIGGERS_PER_DAY = BotLimitParams().deadman_max_triggers_per_day
MAX_SCHEDULED_CANCELS_PER_BLOCK = BotLimitParams().deadman_max_owners_per_block
MAX_TWAP_SLICES_PER_BLOCK = BotLimitParams().twap_max_slices_per_block
MAX_TWAPS_PER_SUBACCOUNT = BotLimitParams().twap_max_per_subaccount


def schedule(time_ms: int | None) -> dict:
    return {"type": "schedule_cancel", "time_ms": time_ms}


def twap(**fields) -> dict:
    return {"type": "place_twap", "subaccount": 0, "market": BTC, "side": "buy", "size": "0.01",
            "duration_ms": 600_000, **fields}


def test_the_end_of_block_steps_include_the_switches_before_the_oracle_and_the_twaps_after_the_triggers():
    names = [step.__name__ for step in END_BLOCK_STEPS]
    assert names.index("run_scheduled_cancels") < names.index("update_oracle_prices")
    assert names.index("trigger_conditional_orders") < names.index("execute_twap_slices") < names.index("liquidate")


# --------------------------------------------------------------------------------------- dead-man's switch
def test_the_switch_fires_at_most_ten_times_a_day_and_clearing_is_always_allowed():
    chain = Chain()
    for firing in range(1, MAX_TRIGGERS_PER_DAY + 1):
        assert chain.block([(ALICE, schedule(chain.state.time_ms + 1_000 + 5_000))]).results[0]["ok"]
        fired = chain.block([], advance_s=6)
        assert [e["triggers_today"] for e in fired.events if e["type"] == "scheduled_cancel"] == [firing]

    refused = chain.block([(ALICE, schedule(chain.state.time_ms + 60_000)), (ALICE, schedule(None))])
    assert [r.get("code") for r in refused.results] == ["too_many_scheduled_cancels", None]
    assert chain.state.cancel_schedules[ALICE].triggers == MAX_TRIGGERS_PER_DAY

    next_day = (GENESIS_TIME_MS // DAY_MS + 1) * DAY_MS  # 00:00 UTC of the next day
    chain.block([], advance_s=(next_day - chain.state.time_ms) // 1_000)
    again = chain.block([(ALICE, schedule(chain.state.time_ms + 1_000 + 5_000))])
    assert again.results[0]["ok"] is True
    fired = chain.block([], advance_s=6)
    assert [e["triggers_today"] for e in fired.events if e["type"] == "scheduled_cancel"] == [1]


def test_at_most_a_hundred_switches_fire_in_one_block_and_the_rest_fire_in_the_next():
    chain = Chain()
    owners = [address(0x1000 + i) for i in range(MAX_SCHEDULED_CANCELS_PER_BLOCK + 1)]
    due = chain.state.time_ms + 1_000 + 5_001
    # the last owner's switch is due first: the heap orders by time, then owner
    txs = [(owner, schedule(due if owner != owners[-1] else due - 1)) for owner in owners]
    assert all(result["ok"] for result in chain.block(txs).results)

    first = [e["owner"] for e in chain.block([], advance_s=6).events if e["type"] == "scheduled_cancel"]
    second = [e["owner"] for e in chain.block([]).events if e["type"] == "scheduled_cancel"]

    assert first == [owners[-1], *owners[:MAX_SCHEDULED_CANCELS_PER_BLOCK - 1]]
    assert second == [owners[MAX_SCHEDULED_CANCELS_PER_BLOCK - 1]]


def test_an_owner_with_more_orders_than_the_block_budget_is_cancelled_over_several_blocks():
    chain = Chain(genesis(bot_limits={"deadman_max_orders_per_block": 3}))
    chain.block([(ALICE, place_order(price=str(49000 + i), client_id=i)) for i in range(4)]
                + [(ALICE, twap()), (BOB, place_order(price="48500")), (ALICE, schedule(chain.state.time_ms + 6_000)),
                   (BOB, schedule(chain.state.time_ms + 6_001))])

    first, second = chain.block([], advance_s=6), chain.block([])
    rows = [[(e["owner"], e["cancelled"], e["twaps"], e["triggers_today"], e["complete"])
             for e in block.events if e["type"] == "scheduled_cancel"] for block in (first, second)]

    # block 1: alice's first 3 orders (the budget), her switch stays armed and first in the queue, bob waits;
    # block 2: her 4th order and her TWAP (2 of the budget), then bob's one order
    assert rows == [[(ALICE, 3, 0, 1, False)], [(ALICE, 1, 1, 1, True), (BOB, 1, 0, 1, True)]]
    assert [e["order_id"] for e in first.events if e["type"] == "order_cancelled"] == [1, 2, 3]
    assert not chain.state.subaccounts[(ALICE, 0)].orders and not chain.state.twap_orders
    assert chain.state.cancel_schedules[ALICE].time_ms is None and chain.state.cancel_schedules[ALICE].triggers == 1


def test_refreshing_the_switch_keeps_its_queue_bounded_and_only_the_latest_time_fires():
    chain = Chain()
    chain.block([(ALICE, place_order(price="49000"))])
    start = chain.state.time_ms + 1_000
    chain.block([(ALICE, schedule(start + 5_000 + i)) for i in range(1_000)])

    assert len(chain.state.cancel_queue) <= 2 * len(chain.state.cancel_schedules) + 16 + 1
    early = chain.block([], advance_s=5)  # at start + 5,000: the earlier times were replaced
    late = chain.block([], advance_s=1)
    assert not [e for e in early.events if e["type"] == "scheduled_cancel"]
    assert [(e["time_ms"], e["cancelled"]) for e in late.events if e["type"] == "scheduled_cancel"] == [
        (start + 5_000 + 999, 1)]


# --------------------------------------------------------------------------------------- TWAP orders
def test_at_most_64_twap_slices_trade_in_one_block_in_twap_id_order():
    owners = [address(0x2000 + i) for i in range(14)]
    chain = Chain(genesis(accounts=[account(owner, subaccount(0, "100000")) for owner in owners]))
    txs = [(owner, twap()) for owner in owners for _ in range(MAX_TWAPS_PER_SUBACCOUNT)][:MAX_TWAP_SLICES_PER_BLOCK + 1]

    placed = chain.block(txs)
    slices = [e["twap_id"] for e in placed.events if e["type"] == "twap_slice"]
    later = [e["twap_id"] for e in chain.block([]).events if e["type"] == "twap_slice"]

    ids = [result["twap_id"] for result in placed.results]
    assert slices == ids[:MAX_TWAP_SLICES_PER_BLOCK] and later == ids[MAX_TWAP_SLICES_PER_BLOCK:]
    # the waiting one's next slice is still due at its placement time + 30 s, as the others'
    assert {t.next_slice_ms for t in chain.state.twap_orders.values()} == {placed.time_ms + 30_000}


def test_a_refused_slice_reports_its_code_and_the_twap_goes_on_to_its_end():
    chain = Chain(genesis(accounts=[account(ALICE, subaccount(0, "100000", positions=[
        {"market": BTC, "size": "0.02"}])), account(BOB, subaccount(0, "100000", positions=[
            {"market": BTC, "size": "-0.02"}]))]))
    chain.block([(BOB, place_order(side="buy", size="1", price="49900")),
                 (ALICE, twap(side="sell", size="0.02", duration_ms=90_000, reduce_only=True))])
    # alice closes her remaining long herself, so the next slices would only open a short
    chain.block([(ALICE, place_order(side="sell", size="0.0134", price="49900", time_in_force="ioc", client_id=2))],
                advance_s=30)
    third = chain.block([], advance_s=30)

    rows = [(e["slice"], e["size"], e["filled"], e.get("code")) for e in third.events if e["type"] == "twap_slice"]
    # targets floor(200 x k / 3): 66, 133, 200 lots; slice 2 in the block of the close: 67 lots, refused
    assert chain.state.subaccounts[(ALICE, 0)].positions.get(BTC) is None
    assert rows == [(3, 200 - 66, 0, "reduce_only_would_increase")]
    assert [(e["filled"], e["reason"]) for e in third.events if e["type"] == "twap_finished"] == [(66, "completed")]


# --------------------------------------------------------------------------------------- snapshots
def test_a_snapshot_with_live_twaps_and_armed_switches_continues_exactly():
    chain = Chain()
    chain.block([(BOB, place_order(side="sell", size="1", price="50000")),
                 (ALICE, twap(size="0.3", duration_ms=120_000)), (ALICE, schedule(chain.state.time_ms + 61_000)),
                 (BOB, schedule(chain.state.time_ms + 70_000)), (BOB, schedule(chain.state.time_ms + 80_000))])
    restored = Chain()
    restored.state = state_from_document(state_to_document(chain.state))
    assert restored.state.cancel_queue == sorted(restored.state.cancel_queue)
    assert [entry for entry in restored.state.cancel_queue] == [(chain.state.time_ms + 60_000, ALICE),
                                                                (chain.state.time_ms + 79_000, BOB)]

    for advance in (30, 30, 1, 30):
        a, b = chain.block([], advance_s=advance), restored.block([], advance_s=advance)
        assert (a.state_hash, a.events) == (b.state_hash, b.events)
        assert a.state_hash == compute_state_hash_full(chain.state)
    assert not chain.state.twap_orders and chain.state.cancel_schedules[ALICE].time_ms is None


def test_the_new_steps_do_nothing_without_twaps_or_switches():
    chain = Chain()
    chain.block([])
    before = compute_state_hash_full(chain.state)
    events: list = []
    deadman.run_scheduled_cancels(chain.state, events)
    twap_orders.execute_twap_slices(chain.state, events)
    assert events == [] and not chain.state.dirty and compute_state_hash_full(chain.state) == before


# --------------------------------------------------------------------------------------- order modify
def modify(**fields) -> dict:
    return {"type": "modify_order", "subaccount": 0, "market": BTC, **fields}


def test_a_partly_filled_order_reduced_in_place_keeps_what_it_filled():
    chain = Chain()
    chain.block([(ALICE, place_order(side="sell", size="0.2", price="50000")),
                 (BOB, place_order(side="buy", size="0.05", price="50000", time_in_force="ioc"))])

    result = chain.block([(ALICE, modify(client_id=1, size="0.1"))]).results[0]

    order = chain.state.markets[BTC].book.get(1)
    assert result["kept_priority"] is True and (order.size, order.remaining) == (1_500, 1_000)  # filled 500 lots
    # what a buyer at 50,000.0 (ticks of 0.1) can take: the level's total shrank with the order
    assert chain.state.markets[BTC].book.depth(BUY, 500_000) == 1_000


def test_a_replaced_gtt_order_keeps_its_expiry_and_only_the_new_order_expires():
    chain = Chain()
    good_til_ms = chain.state.time_ms + 10_000
    chain.block([(ALICE, place_order(time_in_force="gtt", good_til="2026-01-01T00:00:10Z"))])
    replaced = chain.block([(ALICE, modify(order_id=1, price="49000"))])
    new_id = replaced.results[0]["order_id"]
    assert chain.state.markets[BTC].book.get(new_id).good_til_ms == good_til_ms

    expired = chain.block([], advance_s=8)  # at 00:00:10

    assert [(e["order_id"], e["reason"]) for e in expired.events if e["type"] == "order_cancelled"] == [
        (new_id, "expired")]
    assert not chain.state.subaccounts[(ALICE, 0)].orders
