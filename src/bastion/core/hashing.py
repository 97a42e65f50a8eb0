"""Canonical serialization and the state hash.

Every piece of state is a *leaf*: a key (a tuple naming its kind first: ``("sub", owner, number)``,
``("order", ticker, id)``, ``("global",)``, ...) and a canonical value. The kinds, their values, their
keys and their fast encoders are declared once in ``bastion.core.leaves`` (``LEAF_KINDS``; the
table in docs/protocol.md, "State hash"), which this module uses: ``serialize_leaf``,
``iter_leaf_keys``, ``leaf_encoding`` (compact ASCII JSON of the key, a zero byte, compact ASCII JSON
of the value) and ``_leaf_bytes`` (the faster path to the same bytes). A leaf's digest is the
SHA-256 of its bytes.

The state commits to its set of leaves with a lattice hash (LtHash, as Solana's SIMD-0215): each
leaf's digest is expanded to a vector of 1024 16-bit lanes, SHAKE128("bastion/leaf/v2" ||
digest) read as little-endian uint16; the state's vector is the lane-wise sum of its leaves'
vectors modulo 2**16; the state hash is SHA-256("bastion/state/v2" || the 2048 bytes of that
vector). A block changes the sum incrementally: a leaf whose digest changed has its old vector
subtracted and its new one added (``commit_state_hash``), so each block rehashes only the leaves it
touched (``State.touch``). ``compute_state_hash_full`` recomputes everything from scratch with the
documented encoding and a plain lane-by-lane sum; tests check that both always agree.

Why not the former sum of SHA-256 digests modulo 2**256: finding leaves whose digests sum to a
chosen value is a generalised birthday problem that Wagner's k-tree algorithm solves in about
2**(2*sqrt(256)) = 2**32 work, so a snapshot could be forged to match a logged state hash. For the
lane sum, a forgery (two different leaf sets with equal sums) is a short non-zero combination
of random vectors in (Z/2**16)**1024 that sums to zero: the short integer solution problem in
dimension 1024, for which lattice reduction and Wagner-style attacks cost well over 2**128 at these
parameters (Bellare-Micciancio's additive construction with Lewi et al.'s LtHash16 parameters,
the analysis SIMD-0215 relies on); the XOF is modelled as a random oracle and SHA-256 of the
leaf bytes as collision-resistant: 128-bit security overall, which SHAKE128 matches. See docs/node.md for the argument
and the measured cost.
"""
from __future__ import annotations

import hashlib
import itertools
from typing import Any, Final

from bastion.core.errors import InvariantViolation
from bastion.core.leaves import _DUMPS as _DUMPS
from bastion.core.leaves import iter_leaf_keys as iter_leaf_keys
from bastion.core.leaves import leaf_bytes as _leaf_bytes
from bastion.core.leaves import leaf_encoding as leaf_encoding
from bastion.core.leaves import serialize_leaf as serialize_leaf
from bastion.core.state import State


def leaf_digest(key: tuple[Any, ...], value: list[Any]) -> bytes:
    """SHA-256 of a leaf's encoding (what ``State.leaf_hashes`` keeps per leaf)."""
    return hashlib.sha256(leaf_encoding(key, value)).digest()


LANES: Final = 1024                # 16-bit lanes of a lattice hash vector
VECTOR_BYTES: Final = 2 * LANES
_LEAF_DOMAIN: Final = b"bastion/leaf/v2"
_STATE_DOMAIN: Final = b"bastion/state/v2"


def leaf_vector_bytes(digest: bytes) -> bytes:
    """A leaf's lattice-hash vector: SHAKE128("bastion/leaf/v2" || leaf digest), 2048 bytes, read as
    1024 little-endian 16-bit lanes."""
    return hashlib.shake_128(_LEAF_DOMAIN + digest).digest(VECTOR_BYTES)


def commitment(vector: bytes) -> str:
    """The state hash of a lane-sum vector: SHA-256("bastion/state/v2" || the 2048 bytes), hex."""
    return hashlib.sha256(_STATE_DOMAIN + vector).hexdigest()


# Lane-wise sums with Python integers: a vector is the integer of its 2048 bytes (little-endian),
# lane i in bits 16i..16i+15. ``_EVEN`` picks the even lanes: ``v & _EVEN`` holds them each in a
# 32-bit slot, so up to 65,535 of them add without a carry reaching the next slot. The odd lanes
# need no mask of their own: the plain integer sum of the vectors minus the sum of their even
# parts is exactly the sum of their odd parts shifted left by 16 bits (``_lane_result``). One mask
# at the end takes every lane mod 2**16.
_EVEN: Final = int.from_bytes(b"\xff\xff\x00\x00" * (LANES // 2), "little")
_ONES: Final = int.from_bytes(b"\x01\x00\x00\x00" * (LANES // 2), "little")  # 1 in every slot
_FOLD: Final = 30_000  # vectors per slot sum before folding: base + 2 * 2**16 * count stays below 2**32


def _lane_result(base: int, total: int, even: int, count: int) -> int:
    """``base`` plus ``count`` vectors added or subtracted, lane-wise mod 2**16, from ``total`` (the
    signed integer sum of those vectors) and ``even`` (the same sum of their even parts). The odd
    lanes' slot sums are ``(total - even) >> 16``, exactly (the difference is a multiple of 2**16).
    Each slot gets ``count * 2**16`` first, more than the subtracted lanes can take away, so no slot
    goes negative and the integer's 32-bit slots are the slot sums; that offset is 0 mod 2**16."""
    offset = (count << 16) * _ONES
    even_lanes = ((base & _EVEN) + even + offset) & _EVEN
    odd_lanes = (((base >> 16) & _EVEN) + ((total - even) >> 16) + offset) & _EVEN
    return even_lanes | (odd_lanes << 16)


class _LaneSum:
    """Adds and subtracts vectors lane-wise mod 2**16 (see ``_EVEN``), keeping the signed sum of the
    vectors and of their even parts (``commit_state_hash`` does the same with local variables;
    ``compute_state_hash_full`` does the sum lane by lane; tests compare them)."""

    __slots__ = ("base", "total", "even", "count")

    def __init__(self, base: int) -> None:
        self.base = base  # the starting vector, as an integer
        self.total = self.even = 0
        self.count = 0

    def add(self, vector: int) -> None:
        self.total += vector
        self.even += vector & _EVEN
        self._counted()

    def sub(self, vector: int) -> None:
        self.total -= vector
        self.even -= vector & _EVEN
        self._counted()

    def _counted(self) -> None:
        self.count += 1
        if self.count >= _FOLD:
            self.base = self.result()
            self.total = self.even = 0
            self.count = 0

    def result(self) -> int:
        """The base plus the added vectors minus the subtracted ones, lane-wise mod 2**16."""
        return _lane_result(self.base, self.total, self.even, self.count)


def commit_state_hash(state: State) -> str:
    """Rehash the leaves touched since the last commit and return the new state hash: for each
    leaf whose digest changed, its old vector leaves the lane sum and its new one enters it. The
    vectors (and their even parts) of the ``_CACHED_VECTORS`` leaf digests written last are kept
    (``State.leaf_vectors``, keyed by digest, oldest first) so that a leaf rewritten soon after
    needs no SHAKE to subtract its old vector. The sums are done in the loop, each vector right
    after it is made or looked up (a second pass over the block's vectors would read them again
    from memory, slower)."""
    leaf_hashes, cache = state.leaf_hashes, state.leaf_vectors
    base, total, even, count = state.hash_accumulator, 0, 0, 0
    mask = _EVEN
    sha256, shake_128, from_bytes = hashlib.sha256, hashlib.shake_128, int.from_bytes
    for key in state.dirty:
        old = leaf_hashes.get(key)
        data = _leaf_bytes(state, key)
        new = None if data is None else sha256(data).digest()
        if new == old:
            continue
        if old is not None:
            cached = cache.pop(old, None)
            if cached is not None:
                total -= cached[0]
                even -= cached[1]
            else:
                vector = from_bytes(shake_128(_LEAF_DOMAIN + old).digest(VECTOR_BYTES), "little")
                total -= vector
                even -= vector & mask
            count += 1
        if new is None:
            del leaf_hashes[key]
        else:
            leaf_hashes[key] = new
            vector = from_bytes(shake_128(_LEAF_DOMAIN + new).digest(VECTOR_BYTES), "little")
            vector_even = vector & mask
            total += vector
            even += vector_even
            count += 1
            cache[new] = (vector, vector_even)
            if len(cache) > 2 * _CACHED_VECTORS:
                _trim(cache)
        if count >= _FOLD:
            base, total, even, count = _lane_result(base, total, even, count), 0, 0, 0
    state.dirty.clear()
    _trim(cache)
    state.hash_accumulator = _lane_result(base, total, even, count)
    state.state_hash = commitment(state.hash_accumulator.to_bytes(VECTOR_BYTES, "little"))
    return state.state_hash


_CACHED_VECTORS: Final = 4_096  # vectors of the leaf digests written last (~18 MB with their even parts)


def _trim(cache: dict[bytes, tuple[int, int]]) -> None:
    """Drop the oldest entries beyond ``_CACHED_VECTORS`` (a dict keeps insertion order; a digest is
    popped when its leaf changes again, and the new digest enters at the end). A vector is a function
    of its digest alone, so an entry is never stale, only perhaps unused."""
    excess = len(cache) - _CACHED_VECTORS
    if excess > 0:
        for key in list(itertools.islice(cache, excess)):
            del cache[key]


def compute_state_hash_full(state: State) -> str:
    """The state hash recomputed from every leaf with the documented encoding (``leaf_encoding``),
    ignoring the incremental bookkeeping, its fast paths and its vector cache. The lane-wise sum only
    adds: even and odd lanes in 32-bit slots (see ``_EVEN``), reduced mod 2**16 every 65,535 leaves
    and at the end (a lane-by-lane loop gives the same bytes, about fifty times slower)."""
    even = odd = 0
    count = 0
    for key in iter_leaf_keys(state):
        value = serialize_leaf(state, key)
        if value is None:
            raise InvariantViolation(f"leaf {key} is listed but does not exist")
        vector = int.from_bytes(leaf_vector_bytes(leaf_digest(key, value)), "little")
        even += vector & _EVEN
        odd += (vector >> 16) & _EVEN
        count += 1
        if count == 0xFFFF:  # 65,535 x (2**16 - 1) < 2**32: no slot has carried into the next yet
            even, odd, count = even & _EVEN, odd & _EVEN, 0
    total = (even & _EVEN) | ((odd & _EVEN) << 16)
    return commitment(total.to_bytes(VECTOR_BYTES, "little"))
