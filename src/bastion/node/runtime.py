"""Process-wide tuning for the long-running node processes (``bastion node``, ``bastion replay``'s
workers): below both ``bastion.node.node`` and ``bastion.node.replay``, so neither imports the other.
"""
from __future__ import annotations

import gc

__all__ = ["tune_garbage_collector"]


def tune_garbage_collector() -> None:
    """A node keeps a large, long-lived state (every resting order, position and account is an
    object): collect the young generation every 50,000 allocations instead of 700, and move what
    exists now (the recovered state) out of the collector's sight. Process-wide; called by
    ``bastion node``. (+14% committed messages/s in ``bench_node.py`` on 200,000 orders.)"""
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()
