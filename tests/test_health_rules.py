"""The health rules as a pure function: each snapshot gets its status and the reason in words."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bettorsense.client.breaker import BreakerState
from bettorsense.health.rules import (
    BackoffInfo,
    CacheInfo,
    CheckLevel,
    CheckResult,
    ConfigSummary,
    Snapshot,
    Status,
    TokenInfo,
    evaluate,
)
from bettorsense.telemetry import ApiCall, Renewal, TokenState

NOW = 1_800_000_000.0

CONFIG = ConfigSummary(
    environment="integration",
    token_url="https://auth.example/oauth/token",
    audience="aud",
    api_url="https://api.example/rg",
    client_id_masked="••••••1234",
    has_credentials=True,
    bookmaker_id=1,
    sub_bookmaker_id=2,
    refresh_every=10.0,
    probe_account_id="player_1",
    health_token_set=False,
)
SHARED = CacheInfo(
    alias="default", backend="django.core.cache.backends.redis.RedisCache", shared=True, reachable=True, error=None
)
TOKEN = TokenInfo(fingerprint="sha256:abc", issued_at=NOW - 100, expires_at=NOW + 500, usable_until=NOW + 495)
GOOD_RENEWAL = Renewal(at=NOW - 100, outcome="ok", origin="beat", duration=0.05, fingerprint="sha256:abc", error=None)
FAILED_RENEWAL = Renewal(
    at=NOW - 2,
    outcome="TokenServerError",
    origin="beat",
    duration=0.05,
    fingerprint=None,
    error="The token endpoint failed. (HTTP 503)",
)
FLEET = TokenState(
    last_renewal=GOOD_RENEWAL,
    last_error=None,
    beat_last_run=NOW - 4,
    beat_last_outcome="not-due",
    requests_last_hour=1,
    requests_last_day=3,
    renewals_last_hour=1,
    renewals_last_day=3,
)
HEALTHY = Snapshot(
    taken_at=NOW,
    config=CONFIG,
    cache=SHARED,
    token=TOKEN,
    fleet=FLEET,
    breaker=BreakerState.CLOSED,
    last_api_call=ApiCall(at=NOW - 1, outcome="ok", status=200, latency=0.02, answered=True),
)
BACKOFF = BackoffInfo(until=NOW + 12, error="TokenServerError", message="The token endpoint failed.")


def codes(snapshot: Snapshot) -> list[str]:
    return [reason.code for reason in evaluate(snapshot).reasons]


def test_healthy_is_ok_without_reasons():
    health = evaluate(HEALTHY)
    assert health.status is Status.OK
    assert health.reasons == ()
    assert health.http_status == 200


@pytest.mark.parametrize(
    ("snapshot", "status", "code"),
    [
        pytest.param(
            replace(HEALTHY, config=None, config_error="ENVIRONMENT is 'staging'"),
            Status.DOWN,
            "config-invalid",
            id="settings-invalid",
        ),
        pytest.param(
            replace(HEALTHY, config=replace(CONFIG, has_credentials=False)),
            Status.DOWN,
            "credentials-missing",
            id="credentials-missing",
        ),
        pytest.param(
            replace(HEALTHY, checks=(CheckResult(CheckLevel.ERROR, "bettorsense.E003", "no such cache", ""),)),
            Status.DOWN,
            "check-error",
            id="check-error",
        ),
        pytest.param(
            replace(HEALTHY, token=None, backoff=BACKOFF), Status.DOWN, "token-unavailable", id="no-token-backing-off"
        ),
        pytest.param(
            replace(HEALTHY, token=None, fleet=replace(FLEET, last_renewal=FAILED_RENEWAL)),
            Status.DOWN,
            "token-unavailable",
            id="no-token-last-request-failed",
        ),
        pytest.param(replace(HEALTHY, breaker=BreakerState.OPEN), Status.DOWN, "breaker-open", id="breaker-open"),
        pytest.param(
            replace(HEALTHY, breaker=BreakerState.HALF_OPEN), Status.DEGRADED, "breaker-half-open", id="half-open"
        ),
        pytest.param(
            replace(HEALTHY, fleet=replace(FLEET, beat_last_run=NOW - 31)),
            Status.DEGRADED,
            "beat-stale",
            id="beat-stale",
        ),
        pytest.param(
            replace(HEALTHY, fleet=replace(FLEET, beat_last_run=None)),
            Status.DEGRADED,
            "beat-stale",
            id="beat-never-ran",
        ),
        pytest.param(
            replace(HEALTHY, cache=replace(SHARED, shared=False)),
            Status.DEGRADED,
            "cache-not-shared",
            id="cache-not-shared",
        ),
        pytest.param(
            replace(
                HEALTHY,
                cache=replace(SHARED, reachable=False, error="ConnectionError"),
                fleet=None,
                breaker=None,
                last_api_call=None,
            ),
            Status.DEGRADED,
            "cache-unreachable",
            id="cache-unreachable",
        ),
        pytest.param(
            replace(HEALTHY, fleet=replace(FLEET, last_renewal=FAILED_RENEWAL), backoff=BACKOFF),
            Status.DEGRADED,
            "renewal-failing",
            id="renewal-failing-token-valid",
        ),
        pytest.param(
            replace(HEALTHY, token=replace(TOKEN, expires_at=NOW + 3, usable_until=NOW - 2)),
            Status.DEGRADED,
            "token-expiring",
            id="token-in-safety-margin",
        ),
        pytest.param(replace(HEALTHY, token=None), Status.DEGRADED, "no-token", id="no-token-no-failure"),
        pytest.param(
            replace(HEALTHY, last_api_call=ApiCall(NOW - 1, "AccessDenied", 403, 0.02, False)),
            Status.DEGRADED,
            "api-refused",
            id="api-refused",
        ),
    ],
)
def test_each_rule(snapshot, status, code):
    health = evaluate(snapshot)
    assert health.status is status
    assert code in [reason.code for reason in health.reasons]
    assert health.http_status == (503 if status is Status.DOWN else 200)
    assert all(" " in reason.message for reason in health.reasons)  # the reason in words


def test_beat_is_stale_only_after_three_intervals():
    assert "beat-stale" not in codes(replace(HEALTHY, fleet=replace(FLEET, beat_last_run=NOW - 29)))
    assert "beat-stale" in codes(replace(HEALTHY, fleet=replace(FLEET, beat_last_run=NOW - 31)))
    slower = replace(HEALTHY, config=replace(CONFIG, refresh_every=20.0), fleet=replace(FLEET, beat_last_run=NOW - 31))
    assert "beat-stale" not in codes(slower)


def test_beat_stale_reason_says_what_to_start():
    reason = evaluate(replace(HEALTHY, fleet=replace(FLEET, beat_last_run=None))).reasons[0]
    assert "celery -A project beat" in reason.message
    assert "worker" in reason.message


def test_unknown_beat_is_not_stale_when_the_cache_is_unreachable():
    snapshot = replace(HEALTHY, cache=replace(SHARED, reachable=False, error="x"), fleet=None)
    assert codes(snapshot) == ["cache-unreachable"]


def test_worst_reason_wins_and_comes_first():
    snapshot = replace(HEALTHY, breaker=BreakerState.OPEN, fleet=replace(FLEET, beat_last_run=None))
    health = evaluate(snapshot)
    assert health.status is Status.DOWN
    assert [r.status for r in health.reasons] == [Status.DOWN, Status.DEGRADED]


def test_a_failed_renewal_with_a_valid_token_is_not_down():
    snapshot = replace(HEALTHY, fleet=replace(FLEET, last_renewal=FAILED_RENEWAL), backoff=BACKOFF)
    health = evaluate(snapshot)
    assert health.status is Status.DEGRADED
    assert "TokenServerError" in health.reasons[0].message


def test_warnings_of_system_checks_do_not_change_the_status():
    snapshot = replace(
        HEALTHY, checks=(CheckResult(CheckLevel.WARNING, "bettorsense.W003", "No beat entry", "Add it"),)
    )
    assert evaluate(snapshot).status is Status.OK


def test_missing_credentials_are_not_reported_twice():
    snapshot = replace(
        HEALTHY,
        config=replace(CONFIG, has_credentials=False),
        token=None,
        checks=(CheckResult(CheckLevel.ERROR, "bettorsense.E001", "Credentials are missing.", ""),),
    )
    assert codes(snapshot) == ["credentials-missing"]


# --- what the rules' inputs and outputs look like on screen ---------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://auth.sportradar.com/oauth/token", "https://auth.sportradar.com/oauth/token"),
        ("https://user:s3cret@auth.example:8443/oauth/token?key=abc#x", "https://auth.example:8443/oauth/token"),
        ("http://[::1]:8765/ci/api/rg", "http://[::1]:8765/ci/api/rg"),
    ],
)
def test_urls_are_shown_without_credentials_or_query(url, shown):
    from bettorsense.health.snapshot import safe_url

    assert safe_url(url) == shown


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (59.9, "59 s"),
        (60, "1 min 00 s"),
        (599.9, "9 min 59 s"),
        (3600, "1 h 00 min"),
        (-5, "0 s"),
    ],
)
def test_durations_match_the_page_countdown_format(seconds, words):
    from bettorsense.health.report import duration

    assert duration(seconds) == words
