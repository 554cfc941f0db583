"""Rate-limit counting, WebSocket message checks, hardening settings and header sets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from webapi.hardening import ONE_YEAR, WebSecuritySettings
from webapi.headers import API_CSP, header_set
from webapi.limits import (
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    LocalCounters,
    MessageGuard,
    RateLimits,
    TooManyRequests,
    WebSocketPolicyViolation,
    parse_limit,
)


def test_a_budget_is_spent_then_refused_with_a_retry_after() -> None:
    limits = RateLimits()
    three = parse_limit("3/minute")
    for _ in range(3):
        limits.check("http", [("user", "alice", three)])
    with pytest.raises(TooManyRequests) as refused:
        limits.check("http", [("user", "alice", three)])
    assert refused.value.status == 429
    assert 1 <= refused.value.retry_after <= 60
    assert refused.value.headers == {"Retry-After": str(refused.value.retry_after)}
    assert "user" in refused.value.detail


def test_keys_scopes_and_namespaces_have_their_own_budgets() -> None:
    limits = RateLimits()
    one = parse_limit("1/minute")
    limits.check("http", [("user", "alice", one)])
    limits.check("http", [("user", "bob", one)])
    limits.check("http", [("client IP", "alice", one)])
    limits.check("ws", [("user", "alice", one)])
    with pytest.raises(TooManyRequests, match="user"):
        limits.check("http", [("user", "alice", one)])


def test_a_refusal_by_the_ip_limit_does_not_charge_the_user() -> None:
    limits = RateLimits()
    one, two = parse_limit("1/minute"), parse_limit("2/minute")
    limits.check("http", [("client IP", "1.2.3.4", one), ("user", "alice", two)])
    with pytest.raises(TooManyRequests, match="client IP"):
        limits.check("http", [("client IP", "1.2.3.4", one), ("user", "alice", two)])
    limits.check("http", [("client IP", "5.6.7.8", one), ("user", "alice", two)])


def test_a_message_guard_closes_on_size_then_on_rate() -> None:
    guard = MessageGuard(RateLimits(), parse_limit("3/minute"), max_bytes=10)
    guard.check("x" * 10)
    guard.check(b"y" * 10)
    with pytest.raises(WebSocketPolicyViolation) as too_big:
        guard.check("é" * 6)  # 6 characters, 12 bytes
    assert too_big.value.code == MESSAGE_TOO_BIG
    guard.check("ok")
    with pytest.raises(WebSocketPolicyViolation) as too_many:
        guard.check("ok")
    assert too_many.value.code == POLICY_VIOLATION


def test_each_connection_has_its_own_message_budget() -> None:
    limits, one = RateLimits(), parse_limit("1/minute")
    first, second = MessageGuard(limits, one, 100), MessageGuard(limits, one, 100)
    first.check("a")
    second.check("a")


@pytest.mark.parametrize(
    "values",
    [
        {"rate_limit_per_user": "lots"},
        {"ws_message_rate": "5 per fortnight"},
        {"cors_origins": ["*"]},
        {"cors_origins": ["https://app.example/path"]},
        {"cors_origins": ["app.example"]},
    ],
)
def test_bad_hardening_settings_fail_at_startup(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        WebSecuritySettings(**values)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFLOW_RATE_LIMIT_PER_USER", "10/second")
    monkeypatch.setenv("TASKFLOW_RATE_LIMIT_ENABLED", "false")
    monkeypatch.setenv("TASKFLOW_CORS_ORIGINS", '["https://app.example"]')
    settings = WebSecuritySettings()
    assert settings.rate_limit_per_user == "10/second"
    assert settings.rate_limit_enabled is False
    assert settings.cors_origins == ["https://app.example"]


def test_hsts_is_on_in_production_unless_configured_otherwise() -> None:
    assert WebSecuritySettings().hsts_seconds == 0
    assert WebSecuritySettings(env="production").hsts_seconds == ONE_YEAR
    assert WebSecuritySettings(env="production", hsts_max_age=0).hsts_seconds == 0
    assert WebSecuritySettings(hsts_max_age=600).hsts_seconds == 600


def test_header_sets() -> None:
    plain = dict(header_set(API_CSP, 0))
    assert plain["X-Content-Type-Options"] == "nosniff"
    assert plain["X-Frame-Options"] == "DENY"
    assert plain["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in plain["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in plain
    hsts = dict(header_set(API_CSP, ONE_YEAR))
    assert hsts["Strict-Transport-Security"] == f"max-age={ONE_YEAR}; includeSubDomains"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_counters_allow_the_burst_then_the_steady_rate() -> None:
    clock = FakeClock()
    counters = LocalCounters(clock)
    ten_a_minute = parse_limit("10/minute")  # one every 6 s, ten at once
    assert all(counters.acquire(ten_a_minute, "k") == 0.0 for _ in range(10))
    assert counters.acquire(ten_a_minute, "k") == pytest.approx(6.0)
    clock.now += 5.9
    assert counters.acquire(ten_a_minute, "k") == pytest.approx(0.1)
    clock.now += 0.1
    assert counters.acquire(ten_a_minute, "k") == 0.0
    assert counters.acquire(ten_a_minute, "k") == pytest.approx(6.0)
    assert counters.acquire(ten_a_minute, "other") == 0.0


def test_local_counters_forget_idle_keys() -> None:
    clock = FakeClock()
    counters = LocalCounters(clock)
    per_second = parse_limit("5/second")
    for key in range(100):
        counters.acquire(per_second, str(key))
    assert len(counters) == 100
    clock.now += LocalCounters.PRUNE_EVERY + 1
    counters.acquire(per_second, "fresh")
    assert len(counters) == 1


def test_a_shared_storage_from_the_limits_library_counts_too() -> None:
    limits = RateLimits("memory://")  # the library's own store, standing in for redis://
    two = parse_limit("2/minute")
    limits.check("http", [("user", "alice", two)])
    limits.check("http", [("user", "alice", two)])
    with pytest.raises(TooManyRequests) as refused:
        limits.check("http", [("user", "alice", two)])
    assert 1 <= refused.value.retry_after <= 60
    with pytest.raises(ValueError, match="async"):
        RateLimits("async+memory://")
