"""The limit order book of one market: price-time priority, integer ticks and lots.

The book only stores resting orders and walks them; it knows nothing of margin, fees or
accounts. The state machine decides what a fill means through the ``on_fill`` callback of
:meth:`Book.match` and rests the remainder of a taker with :meth:`Book.add`.

Structure (per side)
    ``levels``  dict: level key -> :class:`_Level`, a FIFO deque of orders with the level's live lots
    ``keys``    list of level keys sorted ascending, so the best level is always ``keys[-1]``
A level key is the price for bids and the negated price for asks: for both sides "greater key"
means "better price", and one loop serves both sides. A level exists only while it holds live
lots, so ``keys[-1]`` is the exact best price.

Cancellation is lazy: :meth:`Book.remove` takes the order out of the id index and the level's
lot total at once (O(1)), but leaves it in the level's deque as a *zombie* (recorded in
``_zombies``) that matching and iteration skip and drop when they reach it. A level whose last
live order goes is deleted with its zombies; when zombies outnumber live orders, every level is
compacted (amortised O(1) per cancel), so memory stays bounded by the live orders.

Complexity: add O(1) into an existing level, O(log L + L) (a C ``memmove``) when it opens one of
L levels; remove O(1), plus O(L) when it empties a level that is not the best; match O(fills).

Determinism: no floats, no clock, no randomness; dicts are only iterated in insertion order and
orders are compared by identity (``Order`` deliberately has no ``__eq__``).

Nothing here is thread-safe, and the book must not be mutated while one of its iterators is
being consumed (``iter_levels``, ``iter_crossing``, ``orders``), except from ``on_fill``.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable, Iterator

__all__ = ["BUY", "SELL", "FILL_CANCEL_MAKER", "FILL_STOP", "Book", "Order"]

BUY = 0
SELL = 1

# Special returns of an ``on_fill`` callback (a positive return is the lots filled).
FILL_CANCEL_MAKER = -1  # drop the maker from the book and go on with the next one
FILL_STOP = -2  # stop matching now; ``match`` returns stopped=True

_NOTHING = (0, False)


class Order:
    """One order, resting or about to rest. Prices in ticks (> 0), sizes in lots (> 0).

    ``size`` is the original size (defaults to ``remaining``); the book only ever changes
    ``remaining``. Orders compare by identity. Do not change ``side``, ``price`` or ``remaining``
    of an order while it rests: remove it first.
    """

    __slots__ = ("order_id", "side", "price", "remaining", "size", "owner", "number", "client_id",
                 "time_in_force", "reduce_only", "good_til_ms", "self_trade", "placed_ms")

    def __init__(self, order_id: int, side: int, price: int, remaining: int, size: int | None = None,
                 owner: str = "", number: int = 0, client_id: int = 0, time_in_force: str = "gtc",
                 reduce_only: bool = False, good_til_ms: int | None = None,
                 self_trade: str = "cancel_resting", placed_ms: int = 0) -> None:
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

    def __repr__(self) -> str:
        side = "buy" if self.side == BUY else "sell"
        return (f"Order({self.order_id}, {side}, price={self.price}, remaining={self.remaining}/{self.size}, "
                f"owner={self.owner!r}, number={self.number})")


class _Level(OrderedDict):
    """The orders at one price, order_id -> order in arrival order, and their total lots."""

    __slots__ = ("key", "total")


class Book:
    """Resting orders of one market, in price-time priority. See the module docstring."""

    __slots__ = ("_orders", "_bids", "_asks", "_bid_keys", "_ask_keys")

    def __init__(self) -> None:
        self._orders: dict[int, Order] = {}  # order_id -> resting order, in insertion order
        self._bids: dict[int, _Level] = {}  # key = price
        self._asks: dict[int, _Level] = {}  # key = -price
        self._bid_keys: list[int] = []  # ascending; best bid last
        self._ask_keys: list[int] = []  # ascending (-price); best ask last

    # ------------------------------------------------------------------------- reads
    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get(self, order_id: int) -> Order | None:
        return self._orders.get(order_id)

    def orders(self) -> Iterator[Order]:
        """All resting orders, in the order they were added."""
        return iter(self._orders.values())

    def best_bid(self) -> int | None:
        keys = self._bid_keys
        return keys[-1] if keys else None

    def best_ask(self) -> int | None:
        keys = self._ask_keys
        return -keys[-1] if keys else None

    def iter_levels(self, side: int) -> Iterator[tuple[int, int]]:
        """(price, lots) of each level of ``side``, best first; O(1) per level."""
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
            yield from levels[key].values()

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
        """The side a taker walks, and the smallest level key that crosses its limit."""
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
            raise ValueError(f"cannot rest {order!r}: it crosses the other side of the book")
        level = levels.get(key)
        if level is None:
            level = levels[key] = _Level()
            level.key = key
            level.total = lots
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                insort(keys, key)
        else:
            level.total += lots
        level[order_id] = order
        orders[order_id] = order

    def remove(self, order_id: int) -> Order | None:
        """Cancel a resting order; returns it (``remaining`` untouched), or None if unknown."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        if order.side == BUY:
            key = order.price
            levels = self._bids
        else:
            key = -order.price
            levels = self._asks
        level = levels[key]
        del level[order_id]
        total = level.total - order.remaining
        if total:
            level.total = total
        else:
            self._drop_level(key)
        return order

    def match(self, side: int, limit_price: int, lots: int,
              on_fill: Callable[[Order, int], int] | None = None) -> tuple[int, bool]:
        """Walk the makers a taker (``side``, ``limit_price``, ``lots``) crosses; see the module docs.

        Returns (lots consumed, stopped). Fills are at each maker's price. Without ``on_fill``,
        every crossing maker fills as much as it can; with it, ``on_fill(maker, q)`` decides
        (q = min(taker lots left, maker.remaining)) and returns the lots filled (1..q),
        ``FILL_CANCEL_MAKER`` (-1) or ``FILL_STOP`` (-2).
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
            if total <= left:  # the whole level fills
                for order in level.values():
                    order.remaining = 0
                    del orders[order.order_id]
                del levels[key]
                keys.pop()
                left -= total
                if not left or not keys or keys[-1] < bound:
                    break
            else:  # the taker ends inside this level
                level.total = total - left
                filled_orders = 0
                for order in level.values():
                    maker_lots = order.remaining
                    if maker_lots > left:
                        order.remaining = maker_lots - left
                        break
                    order.remaining = 0
                    del orders[order.order_id]
                    filled_orders += 1
                    left -= maker_lots
                    if not left:
                        break
                popitem = level.popitem
                while filled_orders:
                    popitem(False)
                    filled_orders -= 1
                left = 0
                break
        return lots - left, False

    def _match_each(self, side: int, limit_price: int, lots: int,
                    on_fill: Callable[[Order, int], int]) -> tuple[int, bool]:
        """``match`` with a callback per fill. The callback may cancel or add (non-crossing)
        orders through the public methods, so everything is read again after each call."""
        keys, levels, bound = self._opposite(side, limit_price)
        orders = self._orders
        left = lots
        while left > 0 and keys and keys[-1] >= bound:
            level = levels[keys[-1]]
            maker = next(iter(level.values()))
            maker_lots = maker.remaining
            offer = maker_lots if maker_lots < left else left
            filled = on_fill(maker, offer)
            live = orders.get(maker.order_id) is maker
            if filled > 0:
                if filled > offer:
                    raise ValueError(f"on_fill filled {filled} lots of {maker!r}, more than the {offer} offered")
                if not live:
                    raise ValueError(f"on_fill removed {maker!r} and still reported a fill")
                left -= filled
                maker_lots = maker.remaining - filled
                if maker_lots:
                    maker.remaining = maker_lots
                    level.total -= filled
                else:
                    self.remove(maker.order_id)
                    maker.remaining = 0
            elif filled == FILL_CANCEL_MAKER:
                if live:
                    self.remove(maker.order_id)
            elif filled == FILL_STOP:
                return lots - left, True
            else:
                raise ValueError(f"on_fill returned {filled!r}: expected 1..{offer}, -1 or -2")
        return lots - left, False

    # ------------------------------------------------------------------------- upkeep
    def _drop_level(self, key: int) -> None:
        """Delete the (now empty) level ``key``."""
        if key > 0:  # prices are positive, so bid keys are positive and ask keys negative
            levels, keys = self._bids, self._bid_keys
        else:
            levels, keys = self._asks, self._ask_keys
        del levels[key]
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]
