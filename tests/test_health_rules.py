"""The health rules as a pure function: each snapshot gets its status and the reason in words."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bettorsense.client.breaker import BreakerState
from bettorsense.exceptions import BettorSenseError
from bettorsense.health.rules import (
    REASONS,
    BackoffInfo,
    CacheInfo,
    CheckLevel,
    CheckResult,
    ConfigSummary,
    ScheduleInfo,
    Snapshot,
    Status,
    SyncInfo,
    TokenInfo,
    evaluate,
)
from bettorsense.telemetry import ApiCall, ProcessClock, Renewal, TokenState
from bettorsense.tokens import RefreshOutcome

NOW = 1_800_000_000.0

CONFIG = ConfigSummary(
    environment="integration",
    token_url="https://auth.example/oauth/token",
    audience="aud",
    api_url="https://api.example/rg",
    client_id="ops-client-1234",
    client_secret_fingerprint="sha256:0123456789ab",
    has_credentials=True,
    bookmaker_id=1,
    sub_bookmaker_id=2,
    refresh_margin=30.0,
    sync_stale_after=86400.0,
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
    schedule=ScheduleInfo(refresh_every=10.0, sync_scheduled=True),
    sync=SyncInfo(
        first_started_at=NOW - 86400 * 30,
        last_success_at=NOW - 3600,
        last_finished_at=NOW - 3600,
        last_finished_failed=False,
        last_error="",
    ),
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
    slower = replace(
        HEALTHY, schedule=replace(HEALTHY.schedule, refresh_every=20.0), fleet=replace(FLEET, beat_last_run=NOW - 31)
    )
    assert "beat-stale" not in codes(slower)
    assert "beat-stale" in codes(replace(slower, fleet=replace(FLEET, beat_last_run=NOW - 61)))


def test_beat_stale_reason_says_what_to_start():
    reason = evaluate(replace(HEALTHY, fleet=replace(FLEET, beat_last_run=None))).reasons[0]
    assert "celery -A <your project> beat" in reason.message
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
    assert "The token endpoint failed. (HTTP 503)" in health.reasons[0].message
    assert "TokenServerError" not in health.reasons[0].message  # words, not the class name


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


# --- the sync -----------------------------------------------------------------------------------

SYNC_OK = HEALTHY.sync
assert SYNC_OK is not None


def with_sync(**changes: object) -> Snapshot:
    return replace(HEALTHY, sync=replace(SYNC_OK, **changes))


def test_a_failed_last_sync_is_degraded_with_its_error():
    snapshot = with_sync(last_finished_failed=True, last_error="AccessDenied: The API refused access (HTTP 403)")
    health = evaluate(snapshot)
    assert health.status is Status.DEGRADED
    assert [r.code for r in health.reasons] == ["sync-failed"]
    assert "The API refused access (HTTP 403)" in health.reasons[0].message


def test_a_long_sync_error_is_cut_between_words():
    words = " ".join(f"word{i}" for i in range(200))
    (reason,) = evaluate(with_sync(last_finished_failed=True, last_error=words)).reasons
    quoted = reason.message.split(": ", 1)[1]
    assert quoted.endswith("…") and len(quoted) <= 300
    assert quoted[:-1].split()[-1] in words.split()  # the last word shown is a whole one


@pytest.mark.parametrize(
    ("age_hours", "scheduled", "stale"),
    [(23, True, False), (25, True, True), (25, False, False), (24 * 30, False, False)],
)
def test_no_success_for_over_a_day_is_degraded_while_a_sync_is_scheduled(age_hours, scheduled, stale):
    snapshot = replace(
        with_sync(last_success_at=NOW - age_hours * 3600),
        schedule=replace(HEALTHY.schedule, sync_scheduled=scheduled),
    )
    assert ("sync-stale" in codes(snapshot)) is stale


def test_the_sync_limit_is_the_setting():
    snapshot = replace(with_sync(last_success_at=NOW - 2 * 3600), config=replace(CONFIG, sync_stale_after=3600.0))
    (reason,) = evaluate(snapshot).reasons
    assert reason.code == "sync-stale" and "2 h ago" in reason.message and "1 h" in reason.message


def test_before_any_success_the_limit_counts_from_the_first_run():
    never = with_sync(last_success_at=None, first_started_at=NOW - 2 * 86400)
    assert codes(never) == ["sync-stale"]
    assert "No sync has succeeded" in evaluate(never).reasons[0].message
    assert codes(with_sync(last_success_at=None, first_started_at=NOW - 3600)) == []


def test_a_fresh_install_waits_for_its_first_sync():
    assert codes(with_sync(last_success_at=None, first_started_at=None, last_finished_at=None)) == []


def test_sync_runs_that_cannot_be_read_give_no_reason():
    assert codes(replace(HEALTHY, sync=None)) == []


# --- the beat interval comes from the schedule ------------------------------------------------


def test_without_a_fixed_interval_beat_is_stale_after_the_renewal_window():
    calendar = replace(HEALTHY, schedule=replace(HEALTHY.schedule, refresh_every=None))
    assert codes(replace(calendar, fleet=replace(FLEET, beat_last_run=NOW - 29))) == []
    stale = replace(calendar, fleet=replace(FLEET, beat_last_run=NOW - 31))
    assert codes(stale) == ["beat-stale"]
    assert "the renewal window (30 s)" in evaluate(stale).reasons[0].message


def test_a_one_minute_schedule_is_not_stale_between_its_ticks():
    """The issue's case: beat every 60 s was called stale for half of every minute."""
    minute = replace(HEALTHY, schedule=replace(HEALTHY.schedule, refresh_every=60.0))
    assert codes(replace(minute, fleet=replace(FLEET, beat_last_run=NOW - 59))) == []
    assert codes(replace(minute, fleet=replace(FLEET, beat_last_run=NOW - 181))) == ["beat-stale"]


# --- the last error -----------------------------------------------------------------------------

OLD_ERROR = replace(
    FAILED_RENEWAL, at=NOW - 600, outcome="TokenRateLimited", error="The token endpoint is rate limiting."
)


def test_an_error_followed_by_a_good_renewal_is_resolved():
    snapshot = replace(HEALTHY, fleet=replace(FLEET, last_error=OLD_ERROR, last_renewal=GOOD_RENEWAL))
    assert snapshot.last_error_resolved is True
    assert evaluate(snapshot).status is Status.OK


@pytest.mark.parametrize(
    "last_renewal",
    [
        pytest.param(replace(GOOD_RENEWAL, at=NOW - 700), id="the-good-renewal-came-before-the-error"),
        pytest.param(replace(FAILED_RENEWAL, at=NOW - 600), id="the-error-is-the-last-renewal"),
    ],
)
def test_an_error_without_a_good_renewal_since_is_not_resolved(last_renewal):
    snapshot = replace(HEALTHY, fleet=replace(FLEET, last_error=OLD_ERROR, last_renewal=last_renewal))
    assert snapshot.last_error_resolved is False


# --- every reason is listed, in words -------------------------------------------------------------

EVERY_REASON = [
    Snapshot(taken_at=NOW, config_error="BETTORSENSE['ENVIRONMENT'] is 'prod'."),
    replace(HEALTHY, config=replace(CONFIG, has_credentials=False)),
    replace(HEALTHY, checks=(CheckResult(CheckLevel.ERROR, "bettorsense.E005", "redis missing", ""),)),
    replace(HEALTHY, cache=replace(SHARED, reachable=False, error="connection refused"), fleet=None),
    replace(HEALTHY, cache=replace(SHARED, shared=False)),
    replace(HEALTHY, token=None, backoff=BACKOFF),
    replace(HEALTHY, token=replace(TOKEN, usable_until=NOW - 1)),
    replace(HEALTHY, token=None),
    replace(HEALTHY, fleet=replace(FLEET, last_renewal=FAILED_RENEWAL)),
    replace(HEALTHY, fleet=replace(FLEET, beat_last_run=None)),
    replace(HEALTHY, breaker=BreakerState.OPEN),
    replace(HEALTHY, breaker=BreakerState.HALF_OPEN),
    replace(HEALTHY, last_api_call=ApiCall(NOW - 1, "AccessDenied", 403, 0.02, False)),
    with_sync(last_finished_failed=True, last_error="x"),
    with_sync(last_success_at=NOW - 3 * 86400),
    replace(HEALTHY, clocks=(ProcessClock("web:1", 45.0, 0.5, "date", NOW, False),)),
    replace(HEALTHY, clocks=(ProcessClock("web:1", 400.0, 0.5, "date", NOW, True),)),
]


def test_every_reason_the_rules_give_is_in_the_list_with_a_title_and_an_action():
    given = {reason.code for snapshot in EVERY_REASON for reason in evaluate(snapshot).reasons}
    assert given - set(REASONS) == set()
    assert set(REASONS) - given == set(), "a listed reason no snapshot here gives: add one"
    for code, info in REASONS.items():
        assert info.title and " " in info.action, code


def error_class_names(base: type = BettorSenseError) -> set[str]:
    return {base.__name__} | {name for sub in base.__subclasses__() for name in error_class_names(sub)}


def test_reasons_are_words_without_error_class_names_or_outcome_codes():
    jargon = error_class_names() | {f"({outcome.value})" for outcome in RefreshOutcome}
    for snapshot in EVERY_REASON:
        for reason in evaluate(snapshot).reasons:
            assert not [word for word in jargon if word in reason.message], reason
