"""Token buckets that keep one citizen from flooding a meeting."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """`allow(key)` takes one token; a bucket refills at `rate` per second."""

    # Idle buckets are forgotten after this long, so memory stays bounded by
    # the number of recently active people.
    IDLE_SECONDS = 600.0

    def __init__(self, burst: int, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self._buckets: dict[str, _Bucket] = {}
        self._last_sweep = time.monotonic()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if now - self._last_sweep > self.IDLE_SECONDS:
            self._sweep(now)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for key in [k for k, b in self._buckets.items() if now - b.stamp > self.IDLE_SECONDS]:
            del self._buckets[key]
