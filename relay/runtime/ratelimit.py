"""Token-bucket rate limiting per key (a client address, a user), configurable per action.

A refused request gets `M_LIMIT_EXCEEDED` with `retry_after_ms`, as the spec says.
"""

from __future__ import annotations

import time

from relay.errors import LimitExceeded


class RateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    async def check(self, key: str) -> None:
        self.take(key)

    def take(self, key: str, now: float | None = None) -> None:
        if self.per_second <= 0:
            return  # disabled
        now = time.monotonic() if now is None else now
        tokens, updated = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.per_second)
        if tokens < 1.0:
            wait_ms = int((1.0 - tokens) / self.per_second * 1000) + 1
            self._buckets[key] = (tokens, now)
            raise LimitExceeded("Too many requests", retry_after_ms=wait_ms)
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 3600}
