"""Replay protection in the state: each sender's used nonces (``use_nonce``, ``expire_nonces``).

A transaction comes with its sender's nonce (the node's envelope field; the SDK and the demo
bots use increasing microsecond times, sent concurrently, so nonces may arrive out of order).
The state machine keeps, per sender, a ``NonceRecord``:

    floor   every nonce at or below it is spent
    used    the spent nonces above ``floor``, ascending, at most ``NONCE_SET_SIZE`` of them
    last_ms the block time of the sender's latest transaction

A nonce is fresh when it is above ``floor`` and not in ``used``; using it inserts it into
``used``, and when that holds more than ``NONCE_SET_SIZE`` nonces the smallest one leaves and
becomes the new ``floor``. So a client may send its nonces in any order within a window of
``NONCE_SET_SIZE`` (Hyperliquid keeps the 100 highest nonces the same way), and a nonce already
used is always refused (``nonce_used``): either it is in ``used``, or it is at or below ``floor``
(``floor`` only grows, and only to a value that was used).

Bounded: a sender's ``used`` holds at most ``NONCE_SET_SIZE`` integers; a sender idle for
``NONCE_IDLE_MS`` of block time keeps only its floor (``expire_nonces``: ``floor`` becomes the
largest used nonce and ``used`` empties, so the same nonces stay refused and a later one must be
above all of them). The expiry is decided by block time alone, in ``begin_block``, and its outcome
does not depend on the order of the internal queue.

Every transaction of a block consumes its nonce, whether its handler applies it or refuses it
(a refused transfer must not become valid when replayed once the sender is funded); a
transaction refused as ``nonce_used`` consumes nothing and changes nothing. The record is the
leaf ``("nonces", sender)`` = ``[floor, last_ms, [used...]]`` (``bastion.core.hashing``) and is
in snapshots.
"""
from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from typing import Final

from bastion.core.errors import ProtocolError
from bastion.core.state import NonceRecord, State

NONCE_SET_SIZE: Final = 20          # nonces kept above the floor per sender: the out-of-order window
NONCE_IDLE_MS: Final = 86_400_000   # a sender idle this long (block time) keeps only its floor


def use_nonce(state: State, sender: str, nonce: int) -> None:
    """Spend ``nonce`` of ``sender`` at the current block time, or raise ``ProtocolError("nonce_used")``
    (before any change) if it was spent before."""
    record = state.nonces.get(sender)
    if record is None:
        record = NonceRecord(-1, state.time_ms)
        state.nonces[sender] = record
    else:
        used = record.used
        if nonce <= record.floor or (used and nonce <= used[-1] and _contains(used, nonce)):
            raise ProtocolError("nonce_used", f"nonce {nonce} of {sender} was already used", field="nonce")
    if not record.used:  # from an empty set: the expiry queue must hold the sender again
        heapq.heappush(state.nonce_expiry, (state.time_ms, sender))
    insort(record.used, nonce)
    if len(record.used) > NONCE_SET_SIZE:
        record.floor = record.used.pop(0)
    record.last_ms = state.time_ms
    state.touch(("nonces", sender))


def _contains(used: list[int], nonce: int) -> bool:
    i = bisect_left(used, nonce)
    return i < len(used) and used[i] == nonce


def expire_nonces(state: State) -> None:
    """Begin-block step: every sender idle for ``NONCE_IDLE_MS`` keeps only its floor (the largest
    nonce it used). ``state.nonce_expiry`` holds one ``(ms, sender)`` entry, ``ms`` at most the
    record's ``last_ms``, per record whose ``used`` is not empty; an entry that comes due for a
    sender active since is pushed back with its newer time."""
    queue, deadline = state.nonce_expiry, state.time_ms - NONCE_IDLE_MS
    while queue and queue[0][0] <= deadline:
        _, sender = heapq.heappop(queue)
        record = state.nonces[sender]
        if record.last_ms > deadline:
            heapq.heappush(queue, (record.last_ms, sender))
        elif record.used:
            record.floor = record.used[-1]
            record.used = []
            state.touch(("nonces", sender))


def rebuild_nonce_expiry(state: State) -> None:
    """The expiry queue of a state rebuilt from its records (a snapshot): one entry per non-empty set."""
    state.nonce_expiry = [(record.last_ms, sender) for sender, record in state.nonces.items() if record.used]
    heapq.heapify(state.nonce_expiry)
