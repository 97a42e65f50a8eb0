"""The mempool: transactions that passed ``check_tx``, first come first served.

Each transaction gets an arrival number (recorded in the block log with it) and leaves in arrival
order. A sender's nonce is single-use: a nonce already pending or already committed (the block
log knows) is refused, so a client that resubmits after a crash or a timeout can never have its
transaction applied twice. Not thread-safe by itself: the node serialises access.

The nonce check asks the block log only when it must. The mempool keeps each sender's highest
nonce ever accepted or committed (``highest``: seeded from the log's ``tx_index`` at start-up,
raised by every ``add``); every committed nonce is at most that, so a nonce above it is fresh
without a lookup. Clients count their nonces up (the SDK uses increasing microsecond nonces), so
the log (``is_committed``, one indexed SQLite read) is asked only for a nonce at or below the
sender's highest: a resubmission or one out of order. Exact, since the log stays the truth for
those, and memory is one integer per sender (not one entry per transaction, as a set of every used
nonce would need).

Bounded: at most ``capacity`` transactions in all (``mempool_full``) and ``max_per_sender`` pending
per sender (``too_many_pending``: one sender cannot fill the mempool for everyone). A transaction
the block producer refuses (the ante check, ``bastion.core.ante``) leaves through ``drop``: its
nonce is free again and nothing of it is kept.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable

from bastion.core.errors import ProtocolError
from bastion.core.messages import Message
from bastion.node.app import CheckedTx
from bastion.node.blocklog import Tx


class Mempool:
    def __init__(self, is_committed: Callable[[str, int], bool], capacity: int = 200_000,
                 next_arrival: int = 0, highest: dict[str, int] | None = None, max_per_sender: int = 1_000) -> None:
        """``is_committed(sender, nonce)`` asks the block log; ``highest`` is every sender's highest
        committed nonce (``BlockLog.max_nonces``)."""
        self._queue: deque[tuple[Tx, Message]] = deque()
        self._pending: set[tuple[str, int]] = set()
        self._is_committed = is_committed
        self._highest: dict[str, int] = dict(highest or {})
        self._per_sender: dict[str, int] = {}   # sender -> transactions pending (taken ones until done/drop)
        self.capacity = capacity
        self.max_per_sender = max_per_sender
        self.next_arrival = next_arrival

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, checked: CheckedTx) -> Tx:
        key = (checked.sender, checked.nonce)
        highest = self._highest.get(checked.sender, -1)
        if key in self._pending or (checked.nonce <= highest and self._is_committed(*key)):
            raise ProtocolError("duplicate_nonce", f"nonce {checked.nonce} of {checked.sender} was already used",
                                field="nonce")
        if len(self._queue) >= self.capacity:
            raise ProtocolError("mempool_full", "the mempool is full; retry later", field="envelope")
        pending = self._per_sender.get(checked.sender, 0)
        if pending >= self.max_per_sender:
            raise ProtocolError("too_many_pending", f"{checked.sender} has {pending} transactions pending (at most "
                                f"{self.max_per_sender}); retry once some are committed", field="sender")
        tx = Tx(checked.sender, checked.nonce, self.next_arrival, checked.msg)
        self.next_arrival += 1
        self._queue.append((tx, checked.typed))
        self._pending.add(key)
        self._per_sender[checked.sender] = pending + 1
        if checked.nonce > highest:
            self._highest[checked.sender] = checked.nonce
        return tx

    def take(self, limit: int) -> list[tuple[Tx, Message]]:
        """Up to ``limit`` transactions, with their decoded messages, in arrival order (they stay
        "pending" until ``done``)."""
        queue = self._queue
        return [queue.popleft() for _ in range(min(limit, len(queue)))]

    def is_pending(self, sender: str, nonce: int) -> bool:
        return (sender, nonce) in self._pending

    def done(self, txs: list[Tx]) -> None:
        """Forget transactions that are now in the block log (it answers for their nonces)."""
        for tx in txs:
            self._forget(tx)

    def drop(self, tx: Tx) -> None:
        """Forget a taken transaction the block producer refused: it is in no block, its nonce is free."""
        self._forget(tx)

    def _forget(self, tx: Tx) -> None:
        key = (tx.sender, tx.nonce)
        if key in self._pending:
            self._pending.discard(key)
            left = self._per_sender[tx.sender] - 1
            if left:
                self._per_sender[tx.sender] = left
            else:
                del self._per_sender[tx.sender]
