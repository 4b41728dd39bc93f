"""Rate limits: one token bucket per key (a caller's subject, a client's address), in memory.

Each gateway replica counts for itself: with N replicas behind a balancer a client gets up to
N times the configured rate, which the limits' defaults allow for. Buckets of keys not seen
for a while are dropped first when there are too many; a dropped bucket is a full one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from gateway.config import RateLimit

MAX_KEYS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, limit: RateLimit, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def wait_seconds(self, key: str, now: float | None = None) -> float:
        """Takes one token from `key`'s bucket: 0.0 if there was one, else how long until there is."""
        if not self.limit.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.limit.burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(
                float(self.limit.burst), bucket.tokens + (now - bucket.updated) * self.limit.per_second
            )
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.limit.per_second
