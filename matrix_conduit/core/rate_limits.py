"""Token buckets and the `[global.rate_limits]` settings: pure arithmetic, no clock.

Spec: `content/client-server-api/_index.md`, "Rate limiting" (429
`M_LIMIT_EXCEEDED` with `retry_after_ms`). A bucket holds up to
`burst_count` actions and refills at `per_second`; an action takes one, and
when none is left the answer says how long until one is back. The caller
passes the time in, so the math is tested with plain numbers and the
service (`service/rate_limiter.py`) owns the state and the clock.

The limits and their defaults follow Synapse's `rc_*` settings (its
`synapse/config/ratelimiting.py`), so admins moving over find the same
numbers under the same names: `message` is `rc_message`, `login_address`
is `rc_login.address`, and so on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Bucket:
    """One key's bucket: the tokens left at `updated` (seconds, any monotonic origin)."""

    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class Limit:
    """A rate: `per_second` refill, at most `burst_count` at once (0 per_second: unlimited)."""

    per_second: float
    burst_count: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one attempt: allowed, the bucket to keep, and the wait if refused."""

    allowed: bool
    bucket: Bucket
    retry_after_seconds: float = 0.0


def _refilled(bucket: Bucket | None, limit: Limit, now: float) -> Bucket:
    if bucket is None:
        return Bucket(float(limit.burst_count), now)
    elapsed = max(0.0, now - bucket.updated)
    tokens = min(float(limit.burst_count), bucket.tokens + elapsed * limit.per_second)
    return Bucket(tokens, now)


def take(bucket: Bucket | None, limit: Limit, now: float, *, cost: float = 1.0) -> Decision:
    """Take `cost` tokens from `bucket` (None: a full new one) at time `now`.

    Refused, the bucket keeps what it had (a refused attempt costs nothing, so a
    client that waits `retry_after_seconds` gets through).
    """
    if is_unlimited(limit):
        return Decision(True, Bucket(float(limit.burst_count), now))
    current = _refilled(bucket, limit, now)
    if current.tokens >= cost:
        return Decision(True, Bucket(current.tokens - cost, now))
    return Decision(False, current, (cost - current.tokens) / limit.per_second)


def peek(bucket: Bucket | None, limit: Limit, now: float) -> Decision:
    """Would one more action be allowed now? The bucket is not charged."""
    if is_unlimited(limit):
        return Decision(True, Bucket(float(limit.burst_count), now))
    current = _refilled(bucket, limit, now)
    if current.tokens >= 1.0:
        return Decision(True, current)
    return Decision(False, current, (1.0 - current.tokens) / limit.per_second)


def is_unlimited(limit: Limit) -> bool:
    """Synapse's convention: a `per_second` of 0 turns a limit off."""
    return limit.per_second <= 0


def is_full(bucket: Bucket, limit: Limit, now: float) -> bool:
    """A bucket that has refilled whole can be forgotten: a new one is the same."""
    return _refilled(bucket, limit, now).tokens >= limit.burst_count


def retry_after_ms(seconds: float) -> int:
    """The `retry_after_ms` of an answer: whole milliseconds, at least 1."""
    return max(1, math.ceil(seconds * 1000))


def retry_after_header(seconds: float) -> str:
    """The `Retry-After` header: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


# ---------------------------------------------------------------- settings

DEFAULT_LIMITS: dict[str, Limit] = {
    "message": Limit(0.2, 10),  # rc_message
    "registration": Limit(0.17, 3),  # rc_registration
    "login_address": Limit(0.003, 5),  # rc_login.address
    "login_account": Limit(0.003, 5),  # rc_login.account
    "login_failed_attempts": Limit(0.17, 3),  # rc_login.failed_attempts
    "joins_local": Limit(0.1, 10),  # rc_joins.local
    "joins_remote": Limit(0.01, 10),  # rc_joins.remote
    "invites_per_user": Limit(0.003, 5),  # rc_invites.per_user (invites received)
    "invites_per_issuer": Limit(0.3, 10),  # rc_invites.per_issuer
    "media_create": Limit(10.0, 50),  # rc_media_create (uploads and /create)
    "threepid_validation": Limit(0.003, 5),  # rc_3pid_validation
    # Synapse counts federation requests per origin in a window (rc_federation:
    # 50 at once are turned away); a bucket of the same size refilling at 50/s.
    "federation": Limit(50.0, 100),
}
"""Every limit by name, with Synapse's defaults."""


@dataclass(frozen=True, slots=True)
class RateLimitsConfig:
    """`[global.rate_limits]`: on/off, who is exempt, and each limit."""

    enabled: bool = True
    exempt_admins: bool = True
    limits: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))

    def limit(self, name: str) -> Limit:
        return self.limits[name]


def parse_rate_limits(value: Any) -> tuple[RateLimitsConfig, list[tuple[str, str]]]:
    """The settings from a `[global.rate_limits]` table, and its problems as (key, reason).

    Each limit is a sub-table `[global.rate_limits.<name>]` with `per_second`
    (a number, 0 turns it off) and `burst_count` (an integer, at least 1);
    a key left out keeps its default.
    """
    problems: list[tuple[str, str]] = []
    if not isinstance(value, dict):
        return RateLimitsConfig(), [("rate_limits", "must be a table ([global.rate_limits])")]
    settings = RateLimitsConfig()
    flags: dict[str, bool] = {}
    for flag in ("enabled", "exempt_admins"):
        if flag in value:
            if isinstance(value[flag], bool):
                flags[flag] = value[flag]
            else:
                problems.append(
                    (f"rate_limits.{flag}", f"must be true or false, not {value[flag]!r}")
                )
    limits = dict(DEFAULT_LIMITS)
    for name, table in value.items():
        if name in ("enabled", "exempt_admins"):
            continue
        key = f"rate_limits.{name}"
        if name not in DEFAULT_LIMITS:
            problems.append((key, f"is not a limit (known: {', '.join(sorted(DEFAULT_LIMITS))})"))
            continue
        if not isinstance(table, dict):
            problems.append((key, f"must be a table ([global.{key}]) of per_second, burst_count"))
            continue
        limits[name] = _parse_limit(key, table, DEFAULT_LIMITS[name], problems)
    return replace(settings, limits=limits, **flags), problems


def _parse_limit(
    key: str, table: dict[str, Any], default: Limit, problems: list[tuple[str, str]]
) -> Limit:
    for unknown in sorted(set(table) - {"per_second", "burst_count"}):
        problems.append((f"{key}.{unknown}", "is not a key of a limit (per_second, burst_count)"))
    per_second = table.get("per_second", default.per_second)
    burst_count = table.get("burst_count", default.burst_count)
    if isinstance(per_second, bool) or not isinstance(per_second, (int, float)) or per_second < 0:
        problems.append((f"{key}.per_second", f"must be a number ≥ 0, not {per_second!r}"))
        per_second = default.per_second
    if isinstance(burst_count, bool) or not isinstance(burst_count, int) or burst_count < 1:
        problems.append((f"{key}.burst_count", f"must be an integer ≥ 1, not {burst_count!r}"))
        burst_count = default.burst_count
    return Limit(float(per_second), burst_count)
