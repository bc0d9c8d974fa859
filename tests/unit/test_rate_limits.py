"""Token bucket arithmetic, `[global.rate_limits]` parsing, and X-Forwarded-For trust.

Spec: `content/client-server-api/_index.md`, "Rate limiting"; the defaults
are Synapse's `rc_*`. Time is a plain number here: no clock, no waiting.
"""

from __future__ import annotations

import pytest

from matrix_conduit.api.rate_limits import forwarded_client
from matrix_conduit.config import load_config
from matrix_conduit.core.ip_ranges import parse_network
from matrix_conduit.core.rate_limits import (
    DEFAULT_LIMITS,
    Bucket,
    Limit,
    is_full,
    parse_rate_limits,
    peek,
    retry_after_header,
    retry_after_ms,
    take,
)
from matrix_conduit.service.rate_limiter import RateLimited, RateLimiter

TWO_PER_SECOND = Limit(per_second=2.0, burst_count=3)


def test_a_new_bucket_allows_the_burst_then_refuses_with_the_wait_for_one_token() -> None:
    bucket = None
    for _ in range(3):
        decision = take(bucket, TWO_PER_SECOND, now=100.0)
        assert decision.allowed
        bucket = decision.bucket
    refused = take(bucket, TWO_PER_SECOND, now=100.0)
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(0.5)


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst() -> None:
    empty = Bucket(tokens=0.0, updated=10.0)
    assert not take(empty, TWO_PER_SECOND, now=10.4).allowed
    assert take(empty, TWO_PER_SECOND, now=10.5).allowed
    assert take(empty, TWO_PER_SECOND, now=1000.0).bucket.tokens == pytest.approx(2.0)
    assert is_full(empty, TWO_PER_SECOND, now=11.5)
    assert not is_full(empty, TWO_PER_SECOND, now=11.0)


def test_a_refused_attempt_costs_nothing_and_peek_charges_nothing() -> None:
    half = Bucket(tokens=0.5, updated=0.0)
    refused = take(half, TWO_PER_SECOND, now=0.0)
    assert refused.bucket.tokens == pytest.approx(0.5)
    full = Bucket(tokens=3.0, updated=0.0)
    assert peek(full, TWO_PER_SECOND, now=0.0).bucket.tokens == pytest.approx(3.0)


def test_per_second_zero_turns_a_limit_off() -> None:
    off = Limit(per_second=0.0, burst_count=1)
    bucket = None
    for _ in range(100):
        decision = take(bucket, off, now=0.0)
        assert decision.allowed
        bucket = decision.bucket


def test_retry_after_is_rounded_up_never_zero() -> None:
    assert retry_after_ms(0.0001) == 1
    assert retry_after_ms(1.2341) == 1235
    assert retry_after_header(0.2) == "1"
    assert retry_after_header(5.01) == "6"


def test_defaults_are_synapses() -> None:
    assert DEFAULT_LIMITS["message"] == Limit(0.2, 10)
    assert DEFAULT_LIMITS["registration"] == Limit(0.17, 3)
    assert DEFAULT_LIMITS["login_failed_attempts"] == Limit(0.17, 3)
    assert DEFAULT_LIMITS["joins_remote"] == Limit(0.01, 10)
    assert DEFAULT_LIMITS["media_create"] == Limit(10.0, 50)
    settings, problems = parse_rate_limits({})
    assert problems == [] and settings.enabled and settings.exempt_admins


def test_a_table_overrides_only_what_it_names() -> None:
    settings, problems = parse_rate_limits(
        {"enabled": False, "message": {"burst_count": 2}, "login_address": {"per_second": 1}}
    )
    assert problems == []
    assert not settings.enabled
    assert settings.limit("message") == Limit(0.2, 2)
    assert settings.limit("login_address") == Limit(1.0, 5)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"enabled": "yes"}, "rate_limits.enabled"),
        ({"messages": {}}, "rate_limits.messages"),
        ({"message": 5}, "rate_limits.message"),
        ({"message": {"burst_count": 0}}, "rate_limits.message.burst_count"),
        ({"message": {"burst_count": 2.5}}, "rate_limits.message.burst_count"),
        ({"message": {"per_second": -1}}, "rate_limits.message.per_second"),
        ({"message": {"per_second": True}}, "rate_limits.message.per_second"),
        ({"message": {"rate": 1}}, "rate_limits.message.rate"),
    ],
)
def test_each_bad_value_is_a_problem_naming_its_key(table: dict, key: str) -> None:
    _settings, problems = parse_rate_limits(table)
    assert [problem_key for problem_key, _reason in problems] == [key]


def test_the_limiter_keeps_one_bucket_per_key_and_answers_429_with_the_wait() -> None:
    now = [0.0]
    settings, _ = parse_rate_limits({"message": {"per_second": 1, "burst_count": 1}})
    limiter = RateLimiter(settings, clock=lambda: now[0])
    limiter.check("message", "@a:x")
    limiter.check("message", "@b:x")
    with pytest.raises(RateLimited) as refused:
        limiter.check("message", "@a:x")
    assert refused.value.status == 429
    assert refused.value.errcode == "M_LIMIT_EXCEEDED"
    assert refused.value.extra["retry_after_ms"] == 1000
    assert limiter.refused == {"message": 1}
    now[0] = 1.0
    limiter.check("message", "@a:x")


def test_failures_recorded_afterwards_empty_the_bucket_peek_reads() -> None:
    settings, _ = parse_rate_limits({"login_failed_attempts": {"burst_count": 2}})
    limiter = RateLimiter(settings, clock=lambda: 0.0)
    limiter.would_allow("login_failed_attempts", "@a:x")
    limiter.record("login_failed_attempts", "@a:x")
    limiter.record("login_failed_attempts", "@a:x")
    limiter.record("login_failed_attempts", "@a:x")  # already empty: no error, no debt
    with pytest.raises(RateLimited):
        limiter.would_allow("login_failed_attempts", "@a:x")


PROXIES = (parse_network("10.0.0.0/8"), parse_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        ("203.0.113.1", ["198.51.100.7"], "203.0.113.1"),  # not a proxy: the header is a lie
        ("10.0.0.2", ["198.51.100.7"], "198.51.100.7"),
        ("10.0.0.2", [], "10.0.0.2"),  # a proxy's own request
        ("10.0.0.2", ["1.2.3.4, 198.51.100.7"], "198.51.100.7"),  # the client wrote 1.2.3.4
        ("10.0.0.2", ["198.51.100.7, 10.0.0.9"], "198.51.100.7"),  # two proxies in a row
        ("10.0.0.2", ["198.51.100.7", "10.0.0.9"], "198.51.100.7"),  # two header lines
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("10.0.0.2", ["10.0.0.3, 10.0.0.9"], "10.0.0.3"),  # all proxies: the leftmost
    ],
)
def test_x_forwarded_for_is_read_from_the_right_through_trusted_proxies_only(
    peer: str, header: list[str], client: str
) -> None:
    assert forwarded_client(peer, header, PROXIES) == client


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert forwarded_client("10.0.0.2", ["198.51.100.7"], ()) == "10.0.0.2"


def test_the_environment_can_turn_the_limits_off() -> None:
    """`CONDUIT_RATE_LIMITS_ENABLED=false` (for a benchmark run) as `[global.rate_limits]`."""
    environ = {
        "CONDUIT_SERVER_NAME": "example.org",
        "CONDUIT_DATABASE_BACKEND": "leveldb",
        "CONDUIT_DATABASE_PATH": "/var/lib/matrix-conduit",
        "CONDUIT_RATE_LIMITS_ENABLED": "false",
        "CONDUIT_RATE_LIMITS_EXEMPT_ADMINS": "false",
    }
    settings = load_config(None, environ).rate_limits
    assert not settings.enabled and not settings.exempt_admins
    assert load_config(None, {**environ, "CONDUIT_RATE_LIMITS_ENABLED": "true"}).rate_limits.enabled
