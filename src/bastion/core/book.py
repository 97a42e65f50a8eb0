"""The limit order book of one market: price-time priority, integer ticks and lots.

The book stores resting orders and walks them for a taker; it knows nothing of margin, fees or
accounts. The state machine decides what each fill means through the ``on_fill`` callback of
:meth:`Book.match`, then rests what is left of the taker with :meth:`Book.add`.

Structure, per side:
    ``levels``  dict: level key -> :class:`_Level` (head and tail of a FIFO queue, total lots)
    ``keys``    list of the level keys sorted ascending, so the best level is always ``keys[-1]``
A level key is the price for bids and the negated price for asks: on both sides a greater key is
a better price, and the same loop serves both sides. A level exists only while it holds orders,
so ``keys[-1]`` is the exact best price.

The queue of a level is a doubly linked list threaded through the orders themselves (two hidden
slots, ``_prev`` and ``_next``, inherited from :class:`_Queued`), so a cancel unlinks its order
in O(1) touching only its two neighbours, and a filled or cancelled order is unlinked at once and
freed by reference counting. Orders are appended to their level and to the id index
(``_orders``) at the same moment and leave both at the same moment, so **the queue of every
level is in the index's insertion order**: :meth:`Book.orders` alone determines the book, which
is how copies and pickles of a book are made (``__getstate__``).

Complexity: ``add`` O(1) into an existing level, plus a binary search and a C ``memmove`` of the
key list when it opens one of L levels; ``remove`` O(1), plus the same when it empties a level;
``match`` O(levels crossed + orders filled), whole levels being consumed without per-order
arithmetic; ``best_bid``/``best_ask`` O(1); ``iter_levels`` O(1) per level.

Per-maker level totals, once :meth:`Book.track_makers` has been called (the first ``maker_depth``
does): each level's ``makers`` maps the subaccount ``(owner, number)`` of its orders to their lots,
and every write below keeps it equal to the sum of that maker's ``remaining`` at the level, so
``maker_depth`` reads every maker's depth within a price band from the levels inside the band
(found by binary search), never from a scan of the orders (the maker-reward sampling,
``bastion.core.maker_rewards``). A level filled whole takes its totals with it, so the matching
loop pays nothing for them there. Until then ``makers`` is None and the writes skip it, so a book
nobody samples pays one test per write. It is derived: a copy or a snapshot starts without it and
builds it again from the orders.

Determinism: no floats, clock or randomness; dicts are iterated in insertion order only; orders
compare by identity (``Order`` has no ``__eq__``).

The book must not be mutated while one of its iterators (``orders``, ``iter_levels``,
``iter_crossing``) is being consumed, except from ``on_fill``, which may cancel or add
(non-crossing) orders through the public methods.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from typing import Any, Final

from bastion.core.enums import SelfTrade, TimeInForce
from bastion.core.errors import InvariantViolation

__all__ = ["BUY", "SELL", "FILL_CANCEL_MAKER", "FILL_STOP", "Book", "Order"]

BUY: Final = 0
SELL: Final = 1

# What an ``on_fill`` callback may return besides the lots it filled (1..q).
FILL_CANCEL_MAKER: Final = -1  # the maker leaves the book (the caller cancelled it); matching goes on
FILL_STOP: Final = -2  # stop matching now: ``match`` returns stopped=True

_NOTHING: Final = (0, False)


# Order's public fields, in constructor order (its __slots__; also what copy/pickle carry)
_ORDER_FIELDS = ("order_id", "side", "price", "remaining", "size", "owner", "number", "client_id",
                 "time_in_force", "reduce_only", "good_til_ms", "self_trade", "placed_ms")


class _Queued:
    """The book's links between resting orders of one level (None at the ends).

    They live in a base class so that ``Order.__slots__`` is exactly the public fields; they are
    meaningless while an order does not rest, and never copied or pickled (see ``__getstate__``).
    """

    __slots__ = ("_prev", "_next")
    _prev: Order | None
    _next: Order | None


class Order(_Queued):
    """One order, resting or about to rest. Prices in ticks (> 0), sizes in lots (> 0).

    ``size`` is the original size (defaults to ``remaining``); the book only changes
    ``remaining``. Orders compare by identity. While an order rests, only the book may change
    its ``order_id``, ``side``, ``price`` or ``remaining``: remove it first, or fill it through
    ``match``.
    """

    __slots__ = _ORDER_FIELDS

    def __init__(self, order_id: int, side: int, price: int, remaining: int, size: int | None = None,
                 owner: str = "", number: int = 0, client_id: int = 0, time_in_force: str = TimeInForce.GTC,
                 reduce_only: bool = False, good_til_ms: int | None = None,
                 self_trade: str = SelfTrade.CANCEL_RESTING, placed_ms: int = 0) -> None:
        self.order_id = order_id
        self.side = side
        self.price = price
        self.remaining = remaining
        self.size = remaining if size is None else size
        self.owner = owner
        self.number = number
        self.client_id = client_id
        self.time_in_force = time_in_force
        self.reduce_only = reduce_only
        self.good_til_ms = good_til_ms
        self.self_trade = self_trade
        self.placed_ms = placed_ms
        self._prev = self._next = None

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _ORDER_FIELDS)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(_ORDER_FIELDS, state, strict=True):
            setattr(self, name, value)
        self._prev = self._next = None

    def __repr__(self) -> str:
        side = "buy" if self.side == BUY else "sell"
        return (f"Order({self.order_id}, {side}, price={self.price}, remaining={self.remaining}/{self.size}, "
                f"owner={self.owner!r}, number={self.number})")


class _Level:
    """The orders resting at one price: a FIFO queue linked through the orders, its lots, and (once
    the book tracks makers) each maker's lots here."""

    __slots__ = ("key", "total", "head", "tail", "makers")

    def __init__(self, key: int, order: Order, tracked: bool) -> None:
        self.key = key
        self.total = order.remaining
        self.head = self.tail = order
        self.makers: dict[tuple[str, int], int] | None = (
            {(order.owner, order.number): order.remaining} if tracked else None)

    def take(self, order: Order, lots: int) -> None:
        """Take ``lots`` of ``order`` off its maker's total here (the book tracks makers)."""
        makers = self.makers
        if makers is None:
            raise InvariantViolation(f"level {self.key} keeps no per-maker totals")
        maker = (order.owner, order.number)
        left = makers[maker] - lots
        if left:
            makers[maker] = left
        else:
            del makers[maker]

    def __iter__(self) -> Iterator[Order]:
        order: Order | None = self.head
        while order is not None:
            yield order
            order = order._next


class Book:
    """Resting orders of one market, in price-time priority. See the module docstring."""

    __slots__ = ("_orders", "_bids", "_asks", "_bid_keys", "_ask_keys", "_tracked")

    def __init__(self) -> None:
        self._orders: dict[int, Order] = {}  # order_id -> resting order, in insertion order
        self._bids: dict[int, _Level] = {}  # key = price
        self._asks: dict[int, _Level] = {}  # key = -price
        self._bid_keys: list[int] = []  # ascending; the best bid last
        self._ask_keys: list[int] = []  # ascending (-price); the best ask last
        self._tracked = False  # the levels keep per-maker totals (track_makers)

    # ------------------------------------------------------------------------- reads
    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get(self, order_id: int) -> Order | None:
        """The resting order ``order_id``, or None."""
        return self._orders.get(order_id)

    def orders(self) -> Iterator[Order]:
        """All resting orders in the order they were added (so, within a level, in priority)."""
        return iter(self._orders.values())

    def best_bid(self) -> int | None:
        """The highest bid price in ticks, or None if no bid rests."""
        keys = self._bid_keys
        return keys[-1] if keys else None

    def best_ask(self) -> int | None:
        """The lowest ask price in ticks, or None if no ask rests."""
        keys = self._ask_keys
        return -keys[-1] if keys else None

    def iter_levels(self, side: int) -> Iterator[tuple[int, int]]:
        """(price, lots) of each level of ``side``, best first, lazily; O(1) per level."""
        if side == BUY:
            levels = self._bids
            for key in reversed(self._bid_keys):
                yield key, levels[key].total
        elif side == SELL:
            levels = self._asks
            for key in reversed(self._ask_keys):
                yield -key, levels[key].total
        else:
            raise ValueError(f"side must be BUY (0) or SELL (1), not {side!r}")

    def iter_crossing(self, side: int, limit_price: int) -> Iterator[Order]:
        """The makers a taker (``side``, ``limit_price``) would meet, in the order ``match`` meets them."""
        keys, levels, bound = self._opposite(side, limit_price)
        for key in reversed(keys):
            if key < bound:
                return
            yield from levels[key]

    def depth(self, side: int, limit_price: int) -> int:
        """Lots a taker (``side``, ``limit_price``) could fill: the lots of the levels it crosses."""
        keys, levels, bound = self._opposite(side, limit_price)
        lots = 0
        for key in reversed(keys):
            if key < bound:
                break
            lots += levels[key].total
        return lots

    def _opposite(self, side: int, limit_price: int) -> tuple[list[int], dict[int, _Level], int]:
        """The side a taker walks, and the smallest level key there that crosses its limit."""
        if side == BUY:
            return self._ask_keys, self._asks, -limit_price
        if side == SELL:
            return self._bid_keys, self._bids, limit_price
        raise ValueError(f"side must be BUY (0) or SELL (1), not {side!r}")

    # ------------------------------------------------------------------------- writes
    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of its price level. It must not cross the other side."""
        order_id = order.order_id
        orders = self._orders
        if order_id in orders:
            raise ValueError(f"order id {order_id} is already resting")
        side = order.side
        if side == BUY:
            key = order.price
            levels, keys, opposite_keys = self._bids, self._bid_keys, self._ask_keys
        elif side == SELL:
            key = -order.price
            levels, keys, opposite_keys = self._asks, self._ask_keys, self._bid_keys
        else:
            raise ValueError(f"side must be BUY (0) or SELL (1), not {side!r}")
        lots = order.remaining
        if lots <= 0 or order.price <= 0:
            raise ValueError(f"cannot rest {order!r}: price and remaining must be positive")
        if opposite_keys and opposite_keys[-1] >= -key:
            raise ValueError(f"cannot rest {order!r}: it would cross the other side of the book")
        level = levels.get(key)
        if level is None:
            levels[key] = _Level(key, order, self._tracked)
            order._prev = None
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                insort(keys, key)
        else:
            level.total += lots
            tail = level.tail
            tail._next = order
            order._prev = tail
            level.tail = order
            makers = level.makers
            if makers is not None:
                maker = (order.owner, order.number)
                makers[maker] = makers.get(maker, 0) + lots
        order._next = None
        orders[order_id] = order

    def remove(self, order_id: int) -> Order | None:
        """Cancel a resting order and return it (``remaining`` untouched), or None if unknown."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        if order.side == BUY:
            level = self._bids[order.price]
        else:
            level = self._asks[-order.price]
        prev = order._prev
        following = order._next
        if prev is None:
            if following is None:  # it was alone: its level and the level's totals go
                self._drop_level(level.key)
                return order
            level.head = following
            following._prev = None
            order._next = None
        else:
            prev._next = following
            order._prev = None
            if following is None:
                level.tail = prev
            else:
                following._prev = prev
                order._next = None
        level.total -= order.remaining
        if level.makers is not None:
            level.take(order, order.remaining)
        return order

    def reduce(self, order_id: int, lots: int) -> Order:
        """Take ``lots`` (0 < lots < remaining) off a resting order in place: it keeps its place in
        its level's queue (``modify_order`` to a smaller size at the same price)."""
        order = self._orders[order_id]
        if not 0 < lots < order.remaining:
            raise ValueError(f"cannot reduce {order!r} by {lots} lots")
        level = self._bids[order.price] if order.side == BUY else self._asks[-order.price]
        order.remaining -= lots
        order.size -= lots
        level.total -= lots
        if level.makers is not None:
            level.take(order, lots)
        return order

    def match(self, side: int, limit_price: int, lots: int,
              on_fill: Callable[[Order, int], int] | None = None) -> tuple[int, bool]:
        """Fill a taker (``side``, ``limit_price``, ``lots``) against the makers it crosses.

        The makers are met best price first, then first come first served, and fill at their own
        price. Returns (lots consumed, stopped). Without ``on_fill`` every crossing maker fills as
        much as it can. With it, ``on_fill(maker, q)``, q = min(lots left, maker.remaining), is
        called before anything changes for that maker, and returns the lots filled (1..q; below q
        the same maker is offered again), ``FILL_CANCEL_MAKER`` (-1) or ``FILL_STOP`` (-2). If it
        raises, the fills before stand and the book is consistent. An answer outside that contract
        (more than q, a fill of a maker it removed, any other value) and a level found holding fewer
        lots than its total are bugs: ``InvariantViolation`` (a bad ``side`` is a ``ValueError``).
        """
        if on_fill is not None:
            return self._match_each(side, limit_price, lots, on_fill)
        if side == BUY:
            keys = self._ask_keys
            bound = -limit_price
            levels = self._asks
        elif side == SELL:
            keys = self._bid_keys
            bound = limit_price
            levels = self._bids
        else:
            raise ValueError(f"side must be BUY (0) or SELL (1), not {side!r}")
        if not keys or keys[-1] < bound or lots <= 0:
            return _NOTHING
        orders = self._orders
        left = lots
        while True:
            key = keys[-1]
            level = levels[key]
            total = level.total
            if total <= left:  # the whole level fills (and its per-maker totals go with it)
                order: Order | None = level.head
                while order is not None:
                    order.remaining = 0
                    del orders[order.order_id]
                    following = order._next
                    order._prev = order._next = None
                    order = following
                del levels[key]
                keys.pop()
                left -= total
                if not left or not keys or keys[-1] < bound:
                    break
            else:  # the taker ends inside this level
                level.total = total - left
                tracked = level.makers is not None
                head = level.head
                while True:
                    maker_lots = head.remaining
                    if maker_lots > left:
                        head.remaining = maker_lots - left
                        if tracked:
                            level.take(head, left)
                        break
                    if tracked:
                        level.take(head, maker_lots)
                    head.remaining = 0
                    del orders[head.order_id]
                    left -= maker_lots
                    following = head._next
                    head._prev = head._next = None
                    if following is None:
                        raise InvariantViolation(f"level {key} holds fewer lots than its total")  # a corrupt book
                    head = following
                    if not left:
                        break
                head._prev = None
                level.head = head
                left = 0
                break
        return lots - left, False

    def _match_each(self, side: int, limit_price: int, lots: int,
                    on_fill: Callable[[Order, int], int]) -> tuple[int, bool]:
        """``match`` with a callback per maker. The callback may change the book through the
        public methods, so the best level and its head are read again after every call."""
        keys, levels, bound = self._opposite(side, limit_price)
        orders = self._orders
        left = lots
        while left > 0 and keys and keys[-1] >= bound:
            maker = levels[keys[-1]].head
            maker_lots = maker.remaining
            offer = maker_lots if maker_lots < left else left
            filled = on_fill(maker, offer)
            resting = orders.get(maker.order_id) is maker
            if filled > 0:
                if filled > offer:
                    raise InvariantViolation(
                        f"on_fill filled {filled} lots of {maker!r}, more than the {offer} offered")
                if not resting:
                    raise InvariantViolation(f"on_fill removed {maker!r} and still reported a fill")
                left -= filled
                if filled < maker.remaining:
                    maker.remaining -= filled
                    level = self._bids[maker.price] if maker.side == BUY else self._asks[-maker.price]
                    level.total -= filled
                    if level.makers is not None:
                        level.take(maker, filled)
                else:
                    self.remove(maker.order_id)
                    maker.remaining = 0
            elif filled == FILL_CANCEL_MAKER:
                if resting:
                    self.remove(maker.order_id)
            elif filled == FILL_STOP:
                return lots - left, True
            else:
                raise InvariantViolation(f"on_fill returned {filled!r}: expected 1..{offer}, -1 or -2")
        return lots - left, False

    def track_makers(self) -> None:
        """Keep the per-maker level totals from now on (see the module docstring; built once from
        the orders)."""
        if self._tracked:
            return
        for levels in (self._bids, self._asks):
            for level in levels.values():
                makers: dict[tuple[str, int], int] = {}
                for order in level:
                    maker = (order.owner, order.number)
                    makers[maker] = makers.get(maker, 0) + order.remaining
                level.makers = makers
        self._tracked = True

    def maker_depth(self, low: int, high: int, rested_before_ms: int | None) -> dict[tuple[str, int], list[int]]:
        """Each maker's resting lots priced within ``low..high`` ticks (inclusive), as
        ``(owner, number) -> [bid lots, ask lots]`` (makers with no order in the range left out),
        bids best first, then asks best first. With ``rested_before_ms``, only orders placed
        before that time count: the orders placed at or after it are the newest of the book's
        insertion order (``placed_ms`` never decreases along it), so they are found by walking
        back from the newest and stop at the first older one (a maker whose only orders in the
        range are that new stays listed, with 0 lots). The order of the makers is not canonical: a
        book that rebuilt its totals (a copy, a snapshot) lists a level's makers by their oldest
        resting order, a book that kept them by when each was first seen there; a caller must not
        commit it (the maker-score leaf is sorted).

        Cost: O(log levels + the levels in the range and their makers + the orders placed since
        ``rested_before_ms``), never a scan of every order."""
        self.track_makers()
        depth: dict[tuple[str, int], list[int]] = {}
        for side, keys, levels, first, last in ((BUY, self._bid_keys, self._bids, low, high),
                                                (SELL, self._ask_keys, self._asks, -high, -low)):
            for i in range(bisect_right(keys, last) - 1, bisect_left(keys, first) - 1, -1):
                makers = levels[keys[i]].makers
                if makers is None:
                    raise InvariantViolation(f"level {keys[i]} keeps no per-maker totals in a tracked book")
                for maker, lots in makers.items():
                    entry = depth.get(maker)
                    if entry is None:
                        depth[maker] = entry = [0, 0]
                    entry[side] += lots
        if rested_before_ms is not None:
            for order in reversed(self._orders.values()):
                if order.placed_ms < rested_before_ms:
                    break
                if low <= order.price <= high:
                    depth[(order.owner, order.number)][order.side] -= order.remaining
        return depth

    def _drop_level(self, key: int) -> None:
        """Delete the level ``key``, which has no order left."""
        if key > 0:  # prices are positive: bid keys are positive, ask keys negative
            levels, keys = self._bids, self._bid_keys
        else:
            levels, keys = self._asks, self._ask_keys
        del levels[key]
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]

    def __getstate__(self) -> list[Order]:
        """A book is its orders in insertion order (see the module docstring)."""
        return list(self._orders.values())

    def __setstate__(self, orders: list[Order]) -> None:
        Book.__init__(self)
        for order in orders:
            self.add(order)

    def __repr__(self) -> str:
        return f"<Book {len(self._orders)} orders, best bid {self.best_bid()}, best ask {self.best_ask()}>"
