"""Rate limiting state: one token bucket per limit and key (a user, an address, a server).

Spec: `content/client-server-api/_index.md`, "Rate limiting". The arithmetic
is `core/rate_limits.py`; this module keeps the buckets in memory (a
restart forgives everyone, which is what Synapse does too) and forgets
buckets that have refilled whole, so memory stays bounded by the keys
active in the last few refill periods rather than by every address ever
seen. Refusals raise 429 `M_LIMIT_EXCEEDED` with `retry_after_ms`; the
API layer adds the `Retry-After` header (`api/rate_limits.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core.rate_limits import (
    Bucket,
    Decision,
    RateLimitsConfig,
    is_full,
    peek,
    retry_after_ms,
    take,
)
from ..errors import MatrixError

SWEEP_EVERY = 1000
"""Attempts between two sweeps of the buckets that have refilled whole."""


class RateLimited(MatrixError):
    """429 `M_LIMIT_EXCEEDED`, with the wait in seconds for the `Retry-After` header."""

    def __init__(self, limit_name: str, retry_after_seconds: float) -> None:
        milliseconds = retry_after_ms(retry_after_seconds)
        super().__init__(
            429,
            "M_LIMIT_EXCEEDED",
            f"Too many requests ({limit_name.replace('_', ' ')}); "
            f"retry in {milliseconds / 1000:.1f} s.",
            retry_after_ms=milliseconds,
        )
        self.retry_after_seconds = retry_after_seconds


class RateLimiter:
    """The buckets of every limit, and the verbs `check` (charge) and `would_allow` (peek)."""

    def __init__(
        self, settings: RateLimitsConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._attempts = 0
        self.refused: dict[str, int] = {}
        """Refusals per limit name since start-up (for the metrics)."""

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def check(self, limit_name: str, key: str, *, cost: float = 1.0) -> None:
        """Charge one action to `key`'s bucket of `limit_name`; 429 if it is empty."""
        if not self.settings.enabled:
            return
        now = self._clock()
        limit = self.settings.limit(limit_name)
        decision = take(self._buckets.get((limit_name, key)), limit, now, cost=cost)
        self._keep(limit_name, key, decision)
        if not decision.allowed:
            self.refused[limit_name] = self.refused.get(limit_name, 0) + 1
            raise RateLimited(limit_name, decision.retry_after_seconds)

    def would_allow(self, limit_name: str, key: str) -> None:
        """429 if `key`'s bucket of `limit_name` is empty, without charging it."""
        if not self.settings.enabled:
            return
        decision = peek(
            self._buckets.get((limit_name, key)), self.settings.limit(limit_name), self._clock()
        )
        if not decision.allowed:
            self.refused[limit_name] = self.refused.get(limit_name, 0) + 1
            raise RateLimited(limit_name, decision.retry_after_seconds)

    def record(self, limit_name: str, key: str) -> None:
        """Charge one action even if the bucket is empty (failed logins, counted afterwards)."""
        if not self.settings.enabled:
            return
        now = self._clock()
        decision = take(self._buckets.get((limit_name, key)), self.settings.limit(limit_name), now)
        if decision.allowed:
            self._keep(limit_name, key, decision)

    def bucket_count(self) -> int:
        """Buckets held now (the metrics show it: memory the limiter holds)."""
        return len(self._buckets)

    def _keep(self, limit_name: str, key: str, decision: Decision) -> None:
        self._buckets[(limit_name, key)] = decision.bucket
        self._attempts += 1
        if self._attempts % SWEEP_EVERY == 0:
            self._sweep()

    def _sweep(self) -> None:
        now = self._clock()
        limits = self.settings.limits
        for (limit_name, key), bucket in list(self._buckets.items()):
            if is_full(bucket, limits[limit_name], now):
                del self._buckets[(limit_name, key)]
