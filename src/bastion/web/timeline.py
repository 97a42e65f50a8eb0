"""Block heights as block times, for pages that speak of moments rather than heights.

The protocol counts voting periods and snapshots in blocks, and history rows name the block they
happened in; a person reads "voting ends in 4m 05s" or "3 min ago". ``Timeline`` answers the block
time of any height: a committed block's own time from the node's block log, and for a height still
to come an estimate, the head's time plus the blocks to go at the recent pace (the mean block
interval over the last ``PACE_WINDOW`` blocks). A page keeps the height itself as a tooltip.

Built under the node's lock (``Timeline.of(node)`` reads the head and the window's first block);
committed heights are looked up lazily, each under the lock for a moment, and remembered, so a page
asks the log once per height. Its methods must not be called while holding the node's lock (it is
not re-entrant): templates call them while rendering, after the page's reads.
"""
from __future__ import annotations

from typing import Any

__all__ = ["PACE_WINDOW", "Timeline"]

PACE_WINDOW = 240  # blocks over which the recent block interval is measured (a minute of 250 ms blocks)


class Timeline:
    """The block times of heights at one moment of the chain: ``now_ms`` is the head's block time."""

    def __init__(self, head: int, now_ms: int, ms_per_block: int, lookup: Any) -> None:
        self.head, self.now_ms, self.ms_per_block = head, now_ms, ms_per_block
        self._lookup = lookup  # height -> block time in ms (or None) for committed heights
        self._known: dict[int, int] = {head: now_ms}

    @classmethod
    def of(cls, node: Any) -> Timeline:
        """The node's timeline now; the caller holds ``node.lock``."""
        state = node.state
        head, now_ms = state.height, state.time_ms
        first = max(1, head - PACE_WINDOW)
        start = node.log.block(first) if head > first else None
        pace = (now_ms - start.time_ms) // (head - first) if start is not None else 0
        if pace <= 0:  # a chain of one block, or blocks stamped alike: fall back on the genesis interval
            pace = max(1, (now_ms - state.genesis_time_ms) // head) if head else 1_000

        def lookup(height: int) -> int | None:  # called while rendering, after the caller let go of the lock
            if not 1 <= height <= head:
                return None
            with node.lock:  # the log's connection is the API's, used under the node's lock
                block = node.log.block(height)
            return None if block is None else int(block.time_ms)

        return cls(head, now_ms, int(pace), lookup)

    def ms(self, height: Any) -> int | None:
        """The block time of ``height`` in ms: its own when committed, else the estimate (None for no height)."""
        if height is None or isinstance(height, bool) or not isinstance(height, int):
            return None
        if height in self._known:
            return self._known[height]
        if height > self.head:
            return self.now_ms + (height - self.head) * self.ms_per_block
        found = self._lookup(height)
        if found is None:  # height 0 (genesis) or a pruned block: the estimate backwards
            found = self.now_ms - (self.head - height) * self.ms_per_block
        self._known[height] = found
        return found

    def seconds_until(self, height: Any) -> int | None:
        """Whole seconds from the head's block time to ``height``'s (negative when past)."""
        ms = self.ms(height)
        return None if ms is None else (ms - self.now_ms) // 1_000

    def blocks_as_seconds(self, blocks: Any) -> int | None:
        """A number of blocks as seconds at the recent pace (a voting period in time)."""
        if blocks is None or isinstance(blocks, bool) or not isinstance(blocks, int):
            return None
        return blocks * self.ms_per_block // 1_000
