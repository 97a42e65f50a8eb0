"""Snapshot retention: which snapshot files a node keeps (``snapshots_to_keep``).

The newest few serve recovery; a handful more, spread evenly along the chain, give
``bastion replay --verify`` (``bastion.node.replay.verify_log``) cut points to share the chain
between processes, while the directory stays bounded whatever the chain's length.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["SPREAD", "prune_snapshots", "snapshots_to_keep"]

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
