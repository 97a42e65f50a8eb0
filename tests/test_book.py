"""The order book of one market: price-time priority, fills at the maker's price, callbacks.

Unit tests first (Arrange / Act / Assert), then a Hypothesis property comparing the book with a
naive reference (a list of orders sorted by price then arrival) over random sequences of adds,
cancels, re-adds and matches with random callback decisions.
"""
from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bastion.core.book import BUY, FILL_CANCEL_MAKER, FILL_STOP, SELL, Book, Order
from bastion.core.errors import InvariantViolation

ORDER_FIELDS = ("order_id", "side", "price", "remaining", "size", "owner", "number", "client_id",
                "time_in_force", "reduce_only", "good_til_ms", "self_trade", "placed_ms")


# --------------------------------------------------------------------------------- builders
def make_order(order_id: int, side: int = BUY, price: int = 100, lots: int = 10, **fields: object) -> Order:
    """A valid order: buy 10 lots at 100 ticks unless told otherwise."""
    return Order(order_id, side, price, lots, **fields)


def book_with(*orders: tuple[int, int, int, int]) -> Book:
    """A book holding (order_id, side, price, lots) orders, added in the given sequence."""
    book = Book()
    for order_id, side, price, lots in orders:
        book.add(make_order(order_id, side, price, lots))
    return book


def resting(book: Book) -> list[tuple[int, int, int, int]]:
    """(order_id, side, price, remaining) of every resting order, in insertion order."""
    return [(o.order_id, o.side, o.price, o.remaining) for o in book.orders()]


def assert_not_crossed(book: Book) -> None:
    bid, ask = book.best_bid(), book.best_ask()
    if bid is not None and ask is not None:
        assert bid < ask


def assert_consistent(book: Book) -> None:
    """Walking every level finds exactly the resting orders, in insertion order within a price,
    with the lots ``iter_levels`` reports, and the book is not crossed."""
    walked = list(book.iter_crossing(BUY, 10**18)) + list(book.iter_crossing(SELL, 1))
    assert sorted(o.order_id for o in walked) == sorted(o.order_id for o in book.orders())
    assert all(book.get(o.order_id) is o and o.remaining > 0 for o in walked)
    arrival = {o.order_id: i for i, o in enumerate(book.orders())}
    for side in (BUY, SELL):
        queues: dict[int, list[Order]] = {}
        for order in walked:
            if order.side == side:
                queues.setdefault(order.price, []).append(order)
        assert list(book.iter_levels(side)) == [(price, sum(o.remaining for o in queue))
                                                for price, queue in queues.items()]
        for queue in queues.values():
            assert [arrival[o.order_id] for o in queue] == sorted(arrival[o.order_id] for o in queue)
    assert len(book) == len(walked)
    assert_not_crossed(book)


class Recorder:
    """An on_fill callback that plays a script of answers and records what it was offered.

    Each answer is "all" (fill q), an int n > 0 (fill min(n, q)), or FILL_CANCEL_MAKER /
    FILL_STOP; once the script runs out it fills everything.
    """

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.offers: list[tuple[int, int, int]] = []  # (maker order_id, maker price, q)
        self.fills: list[tuple[int, int, int]] = []  # (maker order_id, maker price, lots)

    def __call__(self, maker: Order, q: int) -> int:
        self.offers.append((maker.order_id, maker.price, q))
        answer = self.script.pop(0) if self.script else "all"
        if answer == "all":
            answer = q
        elif answer > 0:
            answer = min(answer, q)
        if answer > 0:
            self.fills.append((maker.order_id, maker.price, answer))
        return answer


# --------------------------------------------------------------------------------- basics
def test_new_book_is_empty():
    book = Book()

    assert len(book) == 0
    assert book.best_bid() is None and book.best_ask() is None
    assert list(book.orders()) == [] and list(book.iter_levels(BUY)) == [] and list(book.iter_levels(SELL)) == []
    assert book.match(BUY, 10**9, 5) == (0, False)


def test_order_slots_are_exactly_the_public_fields():
    assert Order.__slots__ == ORDER_FIELDS


def test_public_surface_is_curated():
    import bastion.core.book as book_module

    assert sorted(book_module.__all__) == ["BUY", "Book", "FILL_CANCEL_MAKER", "FILL_STOP", "Order", "SELL"]
    assert (BUY, SELL, FILL_CANCEL_MAKER, FILL_STOP) == (0, 1, -1, -2)


def test_order_size_defaults_to_remaining():
    assert make_order(1, lots=7).size == 7
    assert Order(1, SELL, 100, 3, 10).size == 10


def test_add_rests_the_order_and_indexes_it_by_id():
    order = make_order(7, BUY, 100, 5)
    book = Book()

    book.add(order)

    assert len(book) == 1 and 7 in book and 8 not in book
    assert book.get(7) is order and book.get(8) is None
    assert book.best_bid() == 100 and book.best_ask() is None


def test_best_prices_are_the_highest_bid_and_lowest_ask():
    book = book_with((1, BUY, 98, 1), (2, BUY, 99, 1), (3, BUY, 97, 1),
                     (4, SELL, 103, 1), (5, SELL, 101, 1), (6, SELL, 102, 1))

    assert (book.best_bid(), book.best_ask()) == (99, 101)


@pytest.mark.parametrize("bad_order", [
    make_order(2, BUY, 105, 1),      # buy at the best ask crosses
    make_order(2, BUY, 106, 1),      # buy above the best ask crosses
    make_order(2, SELL, 100, 1),     # sell at the best bid crosses
    make_order(2, BUY, 100, 0),      # nothing to rest
    make_order(2, BUY, 100, -3),     # negative lots
    make_order(2, BUY, 0, 1),        # price must be positive
    make_order(2, 2, 100, 1),        # unknown side
    make_order(1, BUY, 99, 1),       # duplicate order id (1 rests at 100)
    make_order(3, SELL, 105, 1),     # duplicate order id (3 rests at 105)
])
def test_add_rejects_a_contract_breach_and_changes_nothing(bad_order):
    book = book_with((1, BUY, 100, 5), (3, SELL, 105, 5))
    before = resting(book)

    with pytest.raises(ValueError):
        book.add(bad_order)

    assert resting(book) == before
    assert (book.best_bid(), book.best_ask()) == (100, 105)


def test_remove_returns_the_order_untouched_and_unknown_ids_return_none():
    book = book_with((1, BUY, 100, 5), (2, BUY, 100, 6))

    removed = book.remove(1)

    assert removed.order_id == 1 and removed.remaining == 5
    assert book.remove(1) is None and book.remove(99) is None
    assert len(book) == 1 and 1 not in book
    assert list(book.iter_levels(BUY)) == [(100, 6)]


@pytest.mark.parametrize("removed, best_bid, levels", [
    ([3], 99, [(99, 9), (98, 1)]),             # the best level empties: the next one is best
    ([2, 4], 100, [(100, 3), (98, 1)]),        # a middle level empties
    ([1], 100, [(100, 3), (99, 9)]),           # the worst level empties
    ([3, 2, 1, 4], None, []),                  # everything goes
    ([2], 100, [(100, 3), (99, 7), (98, 1)]),  # the head of a level leaves, the level stays
    ([4], 100, [(100, 3), (99, 2), (98, 1)]),  # the tail of a level leaves, the level stays
])
def test_remove_keeps_best_prices_and_levels_exact(removed, best_bid, levels):
    book = book_with((1, BUY, 98, 1), (2, BUY, 99, 2), (3, BUY, 100, 3), (4, BUY, 99, 7))

    for order_id in removed:
        book.remove(order_id)

    assert book.best_bid() == best_bid
    assert list(book.iter_levels(BUY)) == levels
    assert len(book) == 4 - len(removed)
    assert_consistent(book)


@pytest.mark.parametrize("removed, left", [
    ([3, 1, 5], [2, 4]),     # middle, head, tail
    ([1, 2, 3], [4, 5]),     # the head three times
    ([5, 4, 3], [1, 2]),     # the tail three times
    ([2, 4, 1], [3, 5]),     # every other, then the head
    ([2, 3], [1, 4, 5]),     # a middle order, then the one after it
    ([4, 3], [1, 2, 5]),     # a middle order, then the one before it
])
def test_remove_within_a_level_keeps_the_others_in_sequence(removed, left):
    book = book_with(*[(i, SELL, 100, 1) for i in range(1, 6)])

    for order_id in removed:
        book.remove(order_id)
    book.add(make_order(6, SELL, 100, 1))

    assert [o.order_id for o in book.iter_crossing(BUY, 100)] == left + [6]
    assert_consistent(book)
    assert book.match(BUY, 100, 9) == (len(left) + 1, False)
    assert book.best_ask() is None


def test_matching_through_a_level_twice_keeps_its_queue_intact():
    book = book_with(*[(i, SELL, 100, 2) for i in range(1, 7)])

    book.match(BUY, 100, 5)  # fills 1 and 2, 1 lot of 3
    book.remove(4)
    book.match(BUY, 100, 2)  # the rest of 3, then 1 lot of 5

    assert [(o.order_id, o.remaining) for o in book.iter_crossing(BUY, 100)] == [(5, 1), (6, 2)]
    assert_consistent(book)


def test_orders_iterates_in_insertion_order_across_sides_and_levels():
    book = book_with((5, SELL, 110, 1), (2, BUY, 90, 1), (9, BUY, 95, 1), (1, SELL, 105, 1))
    book.remove(2)
    book.add(make_order(2, BUY, 80, 1))

    assert [o.order_id for o in book.orders()] == [5, 9, 1, 2]


# --------------------------------------------------------------------------------- matching
def test_match_fills_first_come_first_served_within_a_level():
    book = book_with((1, SELL, 100, 3), (2, SELL, 100, 3), (3, SELL, 100, 3))
    fills = Recorder()

    assert book.match(BUY, 100, 7, fills) == (7, False)

    assert fills.fills == [(1, 100, 3), (2, 100, 3), (3, 100, 1)]
    assert resting(book) == [(3, SELL, 100, 2)]


def test_a_partially_filled_maker_keeps_its_priority():
    book = book_with((1, SELL, 100, 10), (2, SELL, 100, 10))
    book.match(BUY, 100, 4)
    fills = Recorder()

    book.match(BUY, 100, 8, fills)

    assert fills.fills == [(1, 100, 6), (2, 100, 2)]
    assert resting(book) == [(2, SELL, 100, 8)]


@pytest.mark.parametrize("taker_side, limit, expected_fills", [
    (BUY, 103, [(10, 101, 2), (11, 102, 2), (12, 103, 2)]),  # buy walks asks upward, each at its price
    (BUY, 102, [(10, 101, 2), (11, 102, 2)]),                # stops at its limit
    (BUY, 100, []),                                          # does not cross
    (SELL, 97, [(20, 99, 2), (21, 98, 2), (22, 97, 2)]),     # sell walks bids downward
    (SELL, 1, [(20, 99, 2), (21, 98, 2), (22, 97, 2)]),      # a deep limit: the whole side
])
def test_fills_happen_at_the_maker_price_best_first(taker_side, limit, expected_fills):
    book = book_with((10, SELL, 101, 2), (11, SELL, 102, 2), (12, SELL, 103, 2),
                     (20, BUY, 99, 2), (21, BUY, 98, 2), (22, BUY, 97, 2))
    fills = Recorder()

    consumed, stopped = book.match(taker_side, limit, 100, fills)

    assert fills.fills == expected_fills
    assert (consumed, stopped) == (sum(q for _, _, q in expected_fills), False)
    assert_not_crossed(book)


def test_a_buy_with_a_generous_limit_pays_the_maker_price():
    book = book_with((1, SELL, 100, 5))
    fills = Recorder()

    book.match(BUY, 150, 5, fills)

    assert fills.fills == [(1, 100, 5)]


@pytest.mark.parametrize("lots, consumed, left", [
    (1, 1, [(1, SELL, 100, 4), (2, SELL, 100, 5), (3, SELL, 101, 5)]),   # inside the first order
    (5, 5, [(2, SELL, 100, 5), (3, SELL, 101, 5)]),                      # exactly the first order
    (7, 7, [(2, SELL, 100, 3), (3, SELL, 101, 5)]),                      # into the second order
    (10, 10, [(3, SELL, 101, 5)]),                                       # exactly the whole level
    (12, 12, [(3, SELL, 101, 3)]),                                       # into the next level
    (15, 15, []),                                                        # everything
    (50, 15, []),                                                        # more than the book holds
])
def test_match_without_callback_consumes_makers_in_priority(lots, consumed, left):
    book = book_with((1, SELL, 100, 5), (2, SELL, 100, 5), (3, SELL, 101, 5))

    assert book.match(BUY, 101, lots) == (consumed, False)

    assert resting(book) == left
    assert book.best_ask() == (left[0][2] if left else None)
    assert_consistent(book)


def test_filled_makers_leave_the_book_with_nothing_remaining():
    maker = make_order(1, SELL, 100, 5)
    book = Book()
    book.add(maker)

    book.match(BUY, 100, 5)

    assert maker.remaining == 0 and 1 not in book and book.best_ask() is None


def test_removed_orders_never_fill():
    book = book_with((1, SELL, 100, 5), (2, SELL, 100, 5), (3, SELL, 101, 5))
    book.remove(1)
    book.remove(3)
    fills = Recorder()

    assert book.match(BUY, 101, 20, fills) == (5, False)

    assert fills.fills == [(2, 100, 5)]


@pytest.mark.parametrize("side, limit, lots", [
    (BUY, 100, 0),   # no lots
    (BUY, 99, 5),    # below the best ask
    (SELL, 101, 5),  # above the best bid
])
def test_match_that_cannot_fill_changes_nothing(side, limit, lots):
    book = book_with((1, SELL, 100, 5), (2, BUY, 95, 5))

    assert book.match(side, limit, lots) == (0, False)
    assert book.match(side, limit, lots, Recorder()) == (0, False)

    assert resting(book) == [(1, SELL, 100, 5), (2, BUY, 95, 5)]


def test_match_rejects_an_unknown_side():
    with pytest.raises(ValueError):
        Book().match(7, 100, 1)


# --------------------------------------------------------------------------------- callbacks
def test_callback_cancel_maker_removes_it_and_matching_goes_on():
    book = book_with((1, SELL, 100, 5), (2, SELL, 100, 5))
    fills = Recorder(FILL_CANCEL_MAKER)

    assert book.match(BUY, 100, 4, fills) == (4, False)

    assert fills.offers == [(1, 100, 4), (2, 100, 4)]
    assert resting(book) == [(2, SELL, 100, 1)]


def test_callback_stop_ends_matching_and_leaves_the_maker():
    book = book_with((1, SELL, 100, 5), (2, SELL, 101, 5))
    fills = Recorder(2, "all", FILL_STOP)

    assert book.match(BUY, 101, 10, fills) == (5, True)

    assert fills.offers == [(1, 100, 5), (1, 100, 3), (2, 101, 5)]
    assert resting(book) == [(2, SELL, 101, 5)]


def test_callback_partial_fill_offers_the_same_maker_again():
    book = book_with((1, SELL, 100, 10))
    fills = Recorder(3, 3)

    assert book.match(BUY, 100, 8, fills) == (8, False)

    assert fills.offers == [(1, 100, 8), (1, 100, 5), (1, 100, 2)]
    assert resting(book) == [(1, SELL, 100, 2)]
    assert list(book.iter_levels(SELL)) == [(100, 2)]


@pytest.mark.parametrize("answer", [
    6,      # more than the 5 offered
    0,      # neither a fill nor a command: would loop forever
    -3,     # unknown command
])
def test_callback_with_an_invalid_answer_raises_and_the_maker_is_untouched(answer):
    book = book_with((1, SELL, 100, 5), (2, SELL, 100, 5))

    with pytest.raises(InvariantViolation):  # the state machine's callback broke the contract: a bug
        book.match(BUY, 100, 5, lambda maker, q: answer)

    assert resting(book) == [(1, SELL, 100, 5), (2, SELL, 100, 5)]
    assert list(book.iter_levels(SELL)) == [(100, 10)]


def test_callback_that_raises_leaves_earlier_fills_and_a_consistent_book():
    book = book_with((1, SELL, 100, 5), (2, SELL, 100, 5), (3, SELL, 101, 5))

    def fail_on_second_maker(maker: Order, q: int) -> int:
        if maker.order_id == 2:
            raise RuntimeError("margin check failed")
        return q

    with pytest.raises(RuntimeError):
        book.match(BUY, 101, 12, fail_on_second_maker)

    assert resting(book) == [(2, SELL, 100, 5), (3, SELL, 101, 5)]
    assert list(book.iter_levels(SELL)) == [(100, 5), (101, 5)]
    assert book.match(BUY, 101, 12) == (10, False)


def test_callback_may_cancel_other_orders_of_the_book():
    book = book_with((1, SELL, 100, 5), (2, SELL, 100, 5), (3, SELL, 101, 5), (4, SELL, 102, 5))

    def cancel_the_owner_orders(maker: Order, q: int) -> int:
        if maker.order_id == 1:  # say 1 and 3 belong to an account that fails its margin check
            book.remove(3)
            book.remove(1)
            return FILL_CANCEL_MAKER
        return q

    assert book.match(BUY, 102, 8, cancel_the_owner_orders) == (8, False)

    assert resting(book) == [(4, SELL, 102, 2)]


def test_callback_that_removes_the_maker_and_reports_a_fill_is_refused():
    book = book_with((1, SELL, 100, 5))

    with pytest.raises(InvariantViolation):
        book.match(BUY, 100, 5, lambda maker, q: (book.remove(maker.order_id), q)[1])

    assert len(book) == 0 and book.best_ask() is None


def test_a_level_holding_fewer_lots_than_its_total_is_an_invariant_violation():
    book = book_with((1, SELL, 100, 5))
    book._asks[-100].total = 10  # corrupt: the level claims 10 lots, its one order holds 5

    with pytest.raises(InvariantViolation, match="level -100 holds fewer lots than its total"):
        book.match(BUY, 100, 7)


def test_callback_and_fast_path_agree_when_every_maker_fills_fully():
    orders = [(i, SELL, 100 + i % 4, 1 + i % 5) for i in range(1, 30)]
    fast, slow = book_with(*orders), book_with(*orders)

    assert fast.match(BUY, 102, 37) == slow.match(BUY, 102, 37, Recorder())

    assert resting(fast) == resting(slow)
    assert list(fast.iter_levels(SELL)) == list(slow.iter_levels(SELL))


# --------------------------------------------------------------------------------- reads
def test_iter_crossing_lists_the_makers_match_would_meet_without_changing_anything():
    book = book_with((1, SELL, 101, 1), (2, SELL, 100, 1), (3, SELL, 101, 1), (4, SELL, 103, 1),
                     (5, BUY, 99, 1))
    book.remove(3)
    before = resting(book)

    seen = [o.order_id for o in book.iter_crossing(BUY, 102)]
    fills = Recorder()
    book.match(BUY, 102, 100, fills)

    assert seen == [2, 1]
    assert [order_id for order_id, _, _ in fills.fills] == seen
    assert before != resting(book)
    assert [o.order_id for o in book.iter_crossing(SELL, 99)] == [5]
    assert list(book.iter_crossing(SELL, 100)) == []


def test_iter_levels_sums_each_price_best_first():
    book = book_with((1, BUY, 99, 3), (2, BUY, 99, 4), (3, BUY, 97, 5), (4, SELL, 101, 1),
                     (5, SELL, 104, 2), (6, SELL, 101, 6))
    book.match(SELL, 99, 2)

    assert list(book.iter_levels(BUY)) == [(99, 5), (97, 5)]
    assert list(book.iter_levels(SELL)) == [(101, 7), (104, 2)]
    with pytest.raises(ValueError):
        list(book.iter_levels(5))


def test_iter_levels_is_lazy_over_many_levels():
    book = book_with(*[(i, SELL, 1000 + i, 1) for i in range(1, 5001)])

    levels = book.iter_levels(SELL)

    assert [next(levels) for _ in range(3)] == [(1001, 1), (1002, 1), (1003, 1)]


@pytest.mark.parametrize("side, limit, lots", [
    (BUY, 100, 0),     # below the best ask
    (BUY, 101, 7),     # the best ask level
    (BUY, 104, 9),     # two levels
    (SELL, 99, 5),     # the best bid level
    (SELL, 1, 10),     # the whole bid side
])
def test_depth_is_the_lots_a_taker_could_fill(side, limit, lots):
    book = book_with((1, BUY, 99, 5), (2, BUY, 97, 5), (3, SELL, 101, 7), (4, SELL, 104, 2))

    assert book.depth(side, limit) == lots


# --------------------------------------------------------------------------------- lifecycle
def test_an_order_removed_and_added_again_goes_to_the_back_of_its_level():
    book = book_with((1, SELL, 100, 5), (2, SELL, 100, 5))
    first = book.remove(1)

    book.add(first)

    assert [o.order_id for o in book.iter_crossing(BUY, 100)] == [2, 1]
    assert book.match(BUY, 100, 10) == (10, False)
    assert len(book) == 0


def test_an_order_moved_to_another_price_loses_its_place():
    book = book_with((1, SELL, 100, 5), (2, SELL, 101, 5))
    moved = book.remove(1)
    moved.price = 101

    book.add(moved)

    assert list(book.iter_levels(SELL)) == [(101, 10)]
    assert [o.order_id for o in book.iter_crossing(BUY, 101)] == [2, 1]


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda b: pickle.loads(pickle.dumps(b))])
def test_a_copied_book_is_equal_and_independent(duplicate):
    book = book_with(*[(i, SELL, 100 + i % 3, i) for i in range(1, 2001)], (5000, BUY, 99, 4))
    book.match(BUY, 100, 10)

    twin = duplicate(book)
    book.match(BUY, 102, 100)

    assert twin.match(BUY, 102, 100) == (100, False)
    assert resting(twin) == resting(book)
    assert list(twin.iter_levels(SELL)) == list(book.iter_levels(SELL))
    assert all(a is not b for a, b in zip(twin.orders(), book.orders()))


def test_a_copied_order_is_not_linked_to_the_book():
    book = book_with((1, SELL, 100, 5), (2, SELL, 100, 5), (3, SELL, 100, 5))

    twin = copy.copy(book.get(2))
    twin.order_id = 4
    book.remove(2)
    book.add(twin)

    assert [o.order_id for o in book.iter_crossing(BUY, 100)] == [1, 3, 4]


# --------------------------------------------------------------------------------- reference model
@dataclass
class RefOrder:
    order_id: int
    side: int
    price: int
    remaining: int
    seq: int


class NaiveBook:
    """The obvious implementation: a list of resting orders, sorted on every walk."""

    def __init__(self) -> None:
        self.orders: list[RefOrder] = []  # insertion order
        self.seq = 0

    def add(self, order_id: int, side: int, price: int, lots: int) -> None:
        self.seq += 1
        self.orders.append(RefOrder(order_id, side, price, lots, self.seq))

    def remove(self, order_id: int) -> RefOrder | None:
        for order in self.orders:
            if order.order_id == order_id:
                self.orders.remove(order)
                return order
        return None

    def crossing(self, side: int, limit: int) -> list[RefOrder]:
        if side == BUY:
            makers = [o for o in self.orders if o.side == SELL and o.price <= limit]
            return sorted(makers, key=lambda o: (o.price, o.seq))
        makers = [o for o in self.orders if o.side == BUY and o.price >= limit]
        return sorted(makers, key=lambda o: (-o.price, o.seq))

    def levels(self, side: int) -> list[tuple[int, int]]:
        totals: dict[int, int] = {}
        for order in self.orders:
            if order.side == side:
                totals[order.price] = totals.get(order.price, 0) + order.remaining
        return sorted(totals.items(), reverse=side == BUY)

    def match(self, side: int, limit: int, lots: int, decide) -> tuple[int, bool]:
        left = lots
        while left > 0:
            makers = self.crossing(side, limit)
            if not makers:
                break
            maker = makers[0]
            answer = decide(maker, min(left, maker.remaining))
            if answer == FILL_STOP:
                return lots - left, True
            if answer == FILL_CANCEL_MAKER:
                self.orders.remove(maker)
                continue
            maker.remaining -= answer
            left -= answer
            if maker.remaining == 0:
                self.orders.remove(maker)
        return lots - left, False

    def best(self, side: int) -> int | None:
        prices = [o.price for o in self.orders if o.side == side]
        if not prices:
            return None
        return max(prices) if side == BUY else min(prices)


def scripted(answers: list[int], log: list):
    """An on_fill that answers from ``answers`` (0: all, 1: half, 2: cancel maker, 3: stop), then all."""
    answers = list(answers)

    def on_fill(maker, q):
        code = answers.pop(0) if answers else 0
        answer = (q, max(1, q // 2), FILL_CANCEL_MAKER, FILL_STOP)[code]
        log.append((maker.order_id, maker.price, q, answer))
        return answer

    return on_fill


SIDES = st.sampled_from([BUY, SELL])
PRICES = st.integers(1, 8)  # few prices: levels hold several orders, takers cross often
SCRIPTS = st.none() | st.lists(st.integers(0, 3), max_size=6)  # None: the on_fill=None fast path


class BookAgainstReference(RuleBasedStateMachine):
    """Random adds, cancels, re-adds and matches, applied to the book and to ``NaiveBook``."""

    def __init__(self) -> None:
        super().__init__()
        self.book, self.ref = Book(), NaiveBook()
        self.next_id = 1

    def _match(self, side: int, price: int, lots: int, script: list[int] | None) -> tuple[int, bool]:
        book_log: list = []
        ref_log: list = []
        if script is None:
            got = self.book.match(side, price, lots)
            want = self.ref.match(side, price, lots, lambda maker, q: q)
        else:
            got = self.book.match(side, price, lots, scripted(script, book_log))
            want = self.ref.match(side, price, lots, scripted(script, ref_log))
        assert got == want
        assert book_log == ref_log
        self.next_id += 1
        return got

    @rule(side=SIDES, price=PRICES, lots=st.integers(1, 9), script=SCRIPTS)
    def limit_order(self, side, price, lots, script):
        """Match what crosses, rest the rest (unless the callback stopped the match)."""
        order_id = self.next_id
        consumed, stopped = self._match(side, price, lots, script)
        if consumed < lots and not stopped:
            self.book.add(Order(order_id, side, price, lots - consumed))
            self.ref.add(order_id, side, price, lots - consumed)

    @rule(side=SIDES, offset=st.integers(0, 2), lots=st.integers(1, 9))
    def passive_order(self, side, offset, lots):
        """Rest next to the other side's best price, without crossing: builds deep levels."""
        if side == BUY:
            best_ask = self.book.best_ask()
            price = max(1, (5 if best_ask is None else best_ask - 1) - offset)
            if best_ask == 1:
                return
        else:
            best_bid = self.book.best_bid()
            price = (4 if best_bid is None else best_bid + 1) + offset
        self.book.add(Order(self.next_id, side, price, lots))
        self.ref.add(self.next_id, side, price, lots)
        self.next_id += 1

    @rule(side=SIDES, price=PRICES, lots=st.integers(1, 30), script=SCRIPTS)
    def immediate_or_cancel(self, side, price, lots, script):
        self._match(side, price, lots, script)

    @precondition(lambda self: self.ref.orders)
    @rule(index=st.integers(0, 50))
    def cancel(self, index):
        order_id = self.ref.orders[index % len(self.ref.orders)].order_id
        removed = self.book.remove(order_id)
        expected = self.ref.remove(order_id)
        assert (removed.order_id, removed.remaining) == (expected.order_id, expected.remaining)
        assert self.book.remove(order_id) is None

    @precondition(lambda self: self.ref.orders)
    @rule(index=st.integers(0, 50), move=st.integers(-1, 1))
    def cancel_and_add_the_same_order_again(self, index, move):
        order_id = self.ref.orders[index % len(self.ref.orders)].order_id
        order = self.book.remove(order_id)
        self.ref.remove(order_id)
        price = max(1, order.price + move)
        opposite = self.book.best_ask() if order.side == BUY else self.book.best_bid()
        if opposite is not None and (price >= opposite if order.side == BUY else price <= opposite):
            price = order.price  # one tick away would cross: stay where it was
        order.price = price
        self.book.add(order)
        self.ref.add(order.order_id, order.side, price, order.remaining)

    @invariant()
    def same_orders_as_the_reference(self):
        assert resting(self.book) == [(o.order_id, o.side, o.price, o.remaining) for o in self.ref.orders]

    @invariant()
    def same_prices_and_levels_as_the_reference(self):
        book, ref = self.book, self.ref
        assert (book.best_bid(), book.best_ask()) == (ref.best(BUY), ref.best(SELL))
        for side in (BUY, SELL):
            assert list(book.iter_levels(side)) == ref.levels(side)
        for side, limit in ((BUY, 4), (SELL, 4), (BUY, 8), (SELL, 1)):
            assert [o.order_id for o in book.iter_crossing(side, limit)] == \
                [o.order_id for o in ref.crossing(side, limit)]
            assert book.depth(side, limit) == sum(o.remaining for o in ref.crossing(side, limit))

    @invariant()
    def consistent_and_never_crossed(self):
        assert_consistent(self.book)


BookAgainstReference.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
test_book_behaves_like_the_naive_reference = BookAgainstReference.TestCase
