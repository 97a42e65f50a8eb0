"""Adapter that plugs ``bastion.core.book.Book`` into the external order-book comparison harness
(not part of the repository; ``make bench-compare`` runs it when present, see benchmarks/README.md).

It drives the book the way the exchange does for a limit GTC order: build the ``Order``, match
it against the other side (``on_fill=None``), rest what is left. Run it through the harness (``HARNESS``: its
directory):

    ENGINES="noop bastion_bench:Adapter orderly_chaos" PY=/tmp/benchvenv/bin/python \\
      PYTHONPATH=/work/main/src:/work/main/benchmarks REPEAT=3 $HARNESS/compare.sh
"""
from __future__ import annotations

from bastion.core.book import BUY, SELL, Book, Order


class Adapter:
    """The harness interface: ``add`` (limit GTC), ``cancel``, ``finish``."""

    def __init__(self) -> None:
        self.book = Book()
        self.volume = 0

    def add(self, oid: int, is_buy: bool, price: int, qty: int) -> None:
        side = BUY if is_buy else SELL
        order = Order(oid, side, price, qty)
        filled, _ = self.book.match(side, price, qty)
        if filled:
            self.volume += filled
            if filled == qty:
                return
            order.remaining = qty - filled
        self.book.add(order)

    def cancel(self, oid: int, is_buy: bool) -> None:
        self.book.remove(oid)

    def finish(self) -> dict:
        return {"volume": self.volume, "live": len(self.book)}
