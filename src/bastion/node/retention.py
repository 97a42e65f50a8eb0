"""Retention: which snapshot files a node keeps (``snapshots_to_keep``), and how long its read
models keep the rows of orders that never traded (``ReadModelRetention``).

Snapshots: the newest few serve recovery; a handful more, spread evenly along the chain, give
``bastion replay --verify`` (``bastion.node.replay.verify_log``) cut points to share the chain
between processes, while the directory stays bounded whatever the chain's length.

Read models: a market maker that re-quotes its ladder every block leaves an order row per quote,
nearly all cancelled untouched (the demo's maker: about 120 a second, 2 MB a minute of
``readmodels.db``). With a ``ReadModelRetention`` the indexer deletes the rows of orders that ended
cancelled or expired without a fill once they are ``keep_blocks`` old (``idle_orders_cutoff``),
checking every ``every_blocks``; everything else (orders that traded or rest, fills, positions,
funding, liquidations, candles, parameters) is kept. The chain itself (the block log) is never pruned.
Without one (the default) every row is kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SPREAD", "ReadModelRetention", "idle_orders_cutoff", "prune_snapshots", "snapshots_to_keep"]

SPREAD = 8


def snapshots_to_keep(heights: list[int], newest: int, spread: int = SPREAD) -> set[int]:
    """Which of the snapshots at ``heights`` (ascending) to keep: the ``newest`` last ones, and the
    first one at or above each multiple of ``stride``, the largest power of two not above
    head / ``spread`` (head: the newest height). That is ``spread`` to ``2 * spread + 1``
    snapshots evenly spread along the chain, whatever its length, for ``replay --verify``'s cuts.
    When the chain doubles the stride doubles, and the first snapshot of a merged pair of stretches
    is one already kept: a snapshot once dropped is never wanted again."""
    if not heights:
        return set()
    stride = 1 << max(0, (heights[-1] // spread).bit_length() - 1)
    kept = set(heights[-newest:])
    seen: set[int] = set()
    for height in heights:
        if height // stride not in seen:
            seen.add(height // stride)
            kept.add(height)
    return kept


def prune_snapshots(directory: Path, newest: int) -> None:
    """Delete the snapshot files (``HEIGHT.json``) of ``directory`` that ``snapshots_to_keep`` does
    not keep; the caller holds the node's snapshot-file lock."""
    heights = {int(p.stem): p for p in directory.glob("*.json") if p.stem.isdigit()}
    kept = snapshots_to_keep(sorted(heights), newest)
    for old_height, old in heights.items():
        if old_height not in kept:
            old.unlink()


@dataclass(frozen=True)
class ReadModelRetention:
    """How long the read models keep orders that never traded: ``keep_blocks`` blocks after their
    last change, pruned once every ``every_blocks`` indexed blocks."""

    keep_blocks: int
    every_blocks: int = 200

    def __post_init__(self) -> None:
        if self.keep_blocks < 1 or self.every_blocks < 1:
            raise ValueError("keep_blocks and every_blocks must be at least 1")


def idle_orders_cutoff(retention: ReadModelRetention | None, indexed_height: int, last_pruned: int) -> int | None:
    """The height below which idle orders (cancelled or expired, nothing filled) are deleted now, or
    None when nothing is due: no retention, fewer than ``every_blocks`` since the last pruning
    (``last_pruned``, an indexed height), or a chain younger than ``keep_blocks``."""
    if retention is None or indexed_height - last_pruned < retention.every_blocks:
        return None
    cutoff = indexed_height - retention.keep_blocks
    return cutoff if cutoff > 0 else None
