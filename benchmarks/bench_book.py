#!/usr/bin/env python3
"""Throughput of ``bastion.core.book.Book`` alone, on a generated single-market workload.

    PYTHONPATH=src python3 benchmarks/bench_book.py [--ops 1000000] [--seed 7]   # one JSON line
    PYTHONPATH=src python3 benchmarks/bench_book.py --check [--ops 20000]        # against a naive book

The workload (stdlib only, integer arithmetic only, so the same seed gives the same operations
on every platform and Python version):
  ~70% passive limit orders: a side at random, 1..200 ticks from the mid (geometric, mean ~10),
       1..100 lots; priced so that they never cross at the time they are issued;
  ~20% cancels of a resting order drawn uniformly (there is always one unless the book is empty);
  ~10% crossing limit orders: 0..3 ticks through the other side's best price, 100..700 lots; what
       is left rests.
Order ids are 1, 2, ... in arrival order; prices start around 100,000 ticks.

The generator keeps its own small book (``_ShadowBook``) to know which orders still rest and where
the best prices are, and records the traded volume it expects. Each operation is replayed the way
the exchange drives the book for a limit GTC order: build an ``Order``, ``match`` it with
``on_fill=None``, ``add`` what is left; a cancel is ``remove``. Only that loop is timed (the
workload is stored in compact arrays and turned into tuples chunk by chunk outside the timer).
Memory: ``book_peak_kb`` is the peak of what the replay allocates (the book and its orders),
measured by ``tracemalloc`` on a second, untimed replay (``--no-memory`` skips it);
``process_peak_rss_kb`` is the whole process's peak RSS, generator included.

``--check`` replays the workload through the book, the generator's shadow book and a naive book
(a list of orders sorted by price then arrival on every match) and compares traded volume, fills
and resting orders.
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
import tracemalloc
from array import array
from bisect import bisect_left, bisect_right, insort
from collections import deque
from random import Random

from bastion.core.book import BUY, SELL, Book, Order

PASSIVE, CANCEL, CROSSING = 0, 1, 2
START_MID_TICKS = 100_000
MAX_OFFSET_TICKS = 200
CHUNK = 1 << 15


# ----------------------------------------------------------------------------- workload
def _offset_table(max_offset: int = MAX_OFFSET_TICKS) -> tuple[list[int], int]:
    """Cumulative integer weights of a geometric law on 1..max_offset with P(k+1)/P(k) = 9/10."""
    cumulative, total = [], 0
    for k in range(1, max_offset + 1):
        total += 9 ** (k - 1) * 10 ** (max_offset - k)
        cumulative.append(total)
    return cumulative, total


class _ShadowBook:
    """The generator's own price-time book: price -> FIFO of [order_id, lots], sorted price lists.

    Cancelled entries are marked with 0 lots and skipped; a price level disappears with its last
    live lot. Tracks the resting ids in a list (for uniform draws) and the traded volume.
    """

    def __init__(self) -> None:
        self.queues: tuple[dict[int, deque], dict[int, deque]] = ({}, {})
        self.live_lots: tuple[dict[int, int], dict[int, int]] = ({}, {})  # price -> resting lots
        self.prices: tuple[list[int], list[int]] = ([], [])  # ascending per side
        self.entries: dict[int, tuple[int, int, list[int]]] = {}  # order_id -> (side, price, entry)
        self.resting: list[int] = []
        self.position: dict[int, int] = {}  # order_id -> index in self.resting
        self.volume = 0
        self.fills = 0

    def best(self, side: int) -> int | None:
        prices = self.prices[side]
        if not prices:
            return None
        return prices[-1] if side == BUY else prices[0]

    def _forget(self, order_id: int) -> None:
        del self.entries[order_id]
        index = self.position.pop(order_id)
        last = self.resting.pop()
        if last != order_id:
            self.resting[index] = last
            self.position[last] = index

    def _level_shrinks(self, side: int, price: int, lots: int) -> None:
        left = self.live_lots[side][price] - lots
        if left:
            self.live_lots[side][price] = left
        else:
            del self.live_lots[side][price], self.queues[side][price]
            prices = self.prices[side]
            del prices[bisect_left(prices, price)]

    def rest(self, order_id: int, side: int, price: int, lots: int) -> None:
        queue = self.queues[side].get(price)
        if queue is None:
            queue = self.queues[side][price] = deque()
            self.live_lots[side][price] = 0
            insort(self.prices[side], price)
        entry = [order_id, lots]
        queue.append(entry)
        self.live_lots[side][price] += lots
        self.entries[order_id] = (side, price, entry)
        self.position[order_id] = len(self.resting)
        self.resting.append(order_id)

    def cancel(self, order_id: int) -> None:
        side, price, entry = self.entries[order_id]
        self._forget(order_id)
        lots, entry[1] = entry[1], 0
        self._level_shrinks(side, price, lots)

    def limit(self, order_id: int, side: int, price: int, lots: int) -> None:
        other = 1 - side
        while lots:
            best = self.best(other)
            if best is None or (best > price if side == BUY else best < price):
                break
            queue = self.queues[other][best]
            taken = 0
            while lots and queue:
                entry = queue[0]
                if not entry[1]:
                    queue.popleft()
                    continue
                fill = min(lots, entry[1])
                entry[1] -= fill
                lots -= fill
                taken += fill
                self.fills += 1
                if not entry[1]:
                    queue.popleft()
                    self._forget(entry[0])
            self.volume += taken
            self._level_shrinks(other, best, taken)
        if lots:
            self.rest(order_id, side, price, lots)


def generate(n_ops: int, seed: int) -> tuple[dict[str, array], dict]:
    """``n_ops`` operations as columns (op, side, order_id, price, lots) and what they should give."""
    rng = Random(seed)
    cumulative, total_weight = _offset_table()
    shadow = _ShadowBook()
    columns = {name: array("q") for name in ("op", "side", "order_id", "price", "lots")}
    op_col, side_col, id_col, price_col, lots_col = columns.values()
    twice_mid = 2 * START_MID_TICKS
    next_id = 1
    counts = [0, 0, 0]
    for _ in range(n_ops):
        bid, ask = shadow.best(BUY), shadow.best(SELL)
        if bid is not None and ask is not None:
            twice_mid = bid + ask
        draw = rng.randrange(100)
        if 70 <= draw < 90 and shadow.resting:
            order_id = shadow.resting[rng.randrange(len(shadow.resting))]
            side = shadow.entries[order_id][0]
            shadow.cancel(order_id)
            op, price, lots = CANCEL, 0, 0
        else:
            side = rng.randrange(2)
            order_id = next_id
            next_id += 1
            if draw < 90:  # passive (also when there was nothing to cancel)
                offset = bisect_right(cumulative, rng.randrange(total_weight)) + 1
                lots = rng.randint(1, 100)
                # ceil(mid) <= best ask and floor(mid) >= best bid: one tick away never crosses
                price = (twice_mid + 1) // 2 - offset if side == BUY else twice_mid // 2 + offset
                op = PASSIVE
            else:
                through = rng.randint(0, 3)
                if side == BUY:
                    price = (ask if ask is not None else (twice_mid + 1) // 2) + through
                else:
                    price = (bid if bid is not None else twice_mid // 2) - through
                lots = rng.randint(100, 700)
                op = CROSSING
            shadow.limit(order_id, side, price, lots)
        counts[op] += 1
        op_col.append(op)
        side_col.append(side)
        id_col.append(order_id)
        price_col.append(price)
        lots_col.append(lots)
    expected = {"volume": shadow.volume, "fills": shadow.fills, "resting": len(shadow.resting),
                "counts": {"passive": counts[PASSIVE], "cancel": counts[CANCEL], "crossing": counts[CROSSING]}}
    return columns, expected


def chunks(columns: dict[str, array]):
    """The operations as lists of (op, side, order_id, price, lots) tuples, CHUNK at a time."""
    n = len(columns["op"])
    for start in range(0, n, CHUNK):
        yield list(zip(*(column[start:start + CHUNK] for column in columns.values())))


# ----------------------------------------------------------------------------- replay
def replay(book: Book, operations) -> int:
    """Apply (op, side, order_id, price, lots) operations as the exchange would; returns lots traded."""
    match, add, remove = book.match, book.add, book.remove
    volume = 0
    for op, side, order_id, price, lots in operations:
        if op == CANCEL:
            remove(order_id)
            continue
        order = Order(order_id, side, price, lots)
        filled, _ = match(side, price, lots)
        if filled:
            volume += filled
            if filled == lots:
                continue
            order.remaining = lots - filled
        add(order)
    return volume


def timed_replay(columns: dict[str, array]) -> tuple[Book, int, float]:
    """Replay chunk by chunk, timing only the replay; returns (book, lots traded, seconds)."""
    book = Book()
    volume = 0
    seconds = 0.0
    for chunk in chunks(columns):
        started = time.perf_counter()
        volume += replay(book, chunk)
        seconds += time.perf_counter() - started
    return book, volume, seconds


def traced_peak_bytes(columns: dict[str, array]) -> int:
    """Peak bytes allocated while replaying (tracemalloc; untimed, the operations are streamed)."""
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    book = Book()
    replay(book, zip(*columns.values()))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - baseline


class NaiveBook:
    """The obvious book: a list of [price, arrival, order_id, side, lots], sorted at every match."""

    def __init__(self) -> None:
        self.orders: list[list[int]] = []
        self.by_id: dict[int, list[int]] = {}
        self.arrival = 0
        self.volume = 0
        self.fills = 0

    def limit(self, order_id: int, side: int, price: int, lots: int) -> None:
        if side == BUY:
            makers = sorted((o for o in self.orders if o[3] == SELL and o[0] <= price), key=lambda o: (o[0], o[1]))
        else:
            makers = sorted((o for o in self.orders if o[3] == BUY and o[0] >= price), key=lambda o: (-o[0], o[1]))
        for maker in makers:
            if not lots:
                break
            fill = min(lots, maker[4])
            maker[4] -= fill
            lots -= fill
            self.volume += fill
            self.fills += 1
            if not maker[4]:
                self.cancel(maker[2])
        if lots:
            self.arrival += 1
            order = [price, self.arrival, order_id, side, lots]
            self.orders.append(order)
            self.by_id[order_id] = order

    def cancel(self, order_id: int) -> None:
        self.orders.remove(self.by_id.pop(order_id))


def check(columns: dict[str, array], expected: dict) -> dict:
    """Book, shadow book (the generator's) and naive book agree on volume and resting orders."""
    book = Book()
    volume = replay(book, zip(*columns.values()))
    naive = NaiveBook()
    for chunk in chunks(columns):
        for op, side, order_id, price, lots in chunk:
            if op == CANCEL:
                naive.cancel(order_id)
            else:
                naive.limit(order_id, side, price, lots)
    book_resting = sorted((o.order_id, o.remaining) for o in book.orders())
    naive_resting = sorted((o[2], o[4]) for o in naive.orders)
    result = {"check": "book", "ops": len(columns["op"]), "volume": volume, "naive_volume": naive.volume,
              "expected_volume": expected["volume"], "fills_naive": naive.fills, "fills_expected": expected["fills"],
              "resting": len(book), "resting_naive": len(naive.orders), "expected_resting": expected["resting"],
              "resting_orders_equal": book_resting == naive_resting}
    result["ok"] = (volume == naive.volume == expected["volume"] and naive.fills == expected["fills"]
                    and len(book) == len(naive.orders) == expected["resting"] and book_resting == naive_resting)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=None, help="operations (default 1,000,000; 20,000 with --check)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--check", action="store_true", help="compare with a naive book instead of timing")
    parser.add_argument("--no-memory", action="store_true", help="skip the (slow, untimed) tracemalloc replay")
    args = parser.parse_args(argv)
    n_ops = args.ops or (20_000 if args.check else 1_000_000)

    started = time.perf_counter()
    columns, expected = generate(n_ops, args.seed)
    generated_s = time.perf_counter() - started

    if args.check:
        result = check(columns, expected)
        print(json.dumps(result))
        return 0 if result["ok"] else 1

    gc.collect()
    book, volume, seconds = timed_replay(columns)
    result = {
        "benchmark": "bastion.core.book", "ops": n_ops, "seed": args.seed, "seconds": round(seconds, 3),
        "ops_per_s": round(n_ops / seconds), "volume": volume, "expected_volume": expected["volume"],
        "volume_matches": volume == expected["volume"], "resting": len(book),
        "expected_resting": expected["resting"], "counts": expected["counts"],
        "generate_s": round(generated_s, 1), "python": platform.python_version(),
    }
    ok = result["volume_matches"] and len(book) == expected["resting"]
    del book
    if not args.no_memory:
        result["book_peak_kb"] = traced_peak_bytes(columns) // 1024
    result["process_peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
