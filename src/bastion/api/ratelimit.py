"""Per-sender token buckets: each signed sender may submit ``rate_per_s`` transactions a second on
average, in bursts of up to ``burst``. Deterministic: time comes from an injected clock in
milliseconds, and tokens are counted in thousandths so that refills are exact integers."""
from __future__ import annotations

import threading
from collections.abc import Callable

from bastion.core.errors import ProtocolError

MILLI = 1_000  # tokens are stored in thousandths of a transaction


class RateLimiter:
    """``take(sender, count)`` spends ``count`` tokens or raises ``rate_limited`` (spending none)."""

    def __init__(self, rate_per_s: int, burst: int, clock_ms: Callable[[], int], max_senders: int = 100_000) -> None:
        if rate_per_s <= 0 or burst <= 0:
            raise ValueError("rate_per_s and burst must be positive")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock_ms = clock_ms
        self.max_senders = max_senders
        self._buckets: dict[str, tuple[int, int]] = {}  # sender -> (milli-tokens, last refill ms)
        self._lock = threading.Lock()

    def take(self, sender: str, count: int = 1) -> None:
        now = self.clock_ms()
        capacity = self.burst * MILLI
        with self._lock:
            tokens, last = self._buckets.get(sender, (capacity, now))
            # rate_per_s tokens per 1000 ms = rate_per_s milli-tokens per ms
            tokens = min(capacity, tokens + max(0, now - last) * self.rate_per_s)
            if tokens < count * MILLI:
                self._buckets[sender] = (tokens, now)
                wait_ms = -(-(count * MILLI - tokens) // self.rate_per_s)
                raise ProtocolError("rate_limited", f"{sender} may submit {self.rate_per_s} transactions per second "
                                    f"(bursts of {self.burst}); retry in {wait_ms} ms", field="sender",
                                    retry_after_ms=wait_ms)
            if len(self._buckets) >= self.max_senders and sender not in self._buckets:
                self._forget_full(now, capacity)
            self._buckets[sender] = (tokens - count * MILLI, now)

    def _forget_full(self, now: int, capacity: int) -> None:
        """Drop the buckets that have refilled completely (they hold nothing worth remembering)."""
        full = [s for s, (t, last) in self._buckets.items() if t + (now - last) * self.rate_per_s >= capacity]
        for sender in full:
            del self._buckets[sender]
