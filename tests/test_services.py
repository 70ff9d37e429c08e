"""The service layer against the sandbox API over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bettorsense.client.breaker import BreakerState, get_breaker
from bettorsense.conf import get_config
from bettorsense.exceptions import (
    AccessDenied,
    AuthenticationFailed,
    BadResponse,
    BettorSenseConfigurationError,
    InvalidInput,
    PlayerNotFound,
    ProfileInactive,
    ProfileNotCreated,
    RateLimited,
    ServiceUnavailable,
)
from bettorsense.profiles import RiskBand
from bettorsense.sandbox import Fault
from bettorsense.services import get_player_risk_profile, iter_risk_profiles, next_recompute
from tests.support.sandbox import FakeClock, token_requests

pytestmark = pytest.mark.django_db(transaction=True)


def api_requests(sandbox: Any, route: str | None = None) -> list[Any]:
    return [r for r in list(sandbox.state.requests) if route is None or r.route == route]


# --- one profile --------------------------------------------------------------------------------


def test_profile_is_typed(configure, sandbox):
    profile = get_player_risk_profile("player_1")
    assert profile.account_id == "player_1"
    assert profile.last_updated is not None and profile.last_updated.tzinfo is not None
    assert 1 <= profile.risk_score <= 100
    assert profile.band == RiskBand.for_score(profile.risk_score)
    assert profile.risk_category == profile.band.value  # the sandbox follows the inferred codes
    assert 0 <= (profile.percentile or 0) <= 100
    assert [c.key for c in profile.category_scores] and all(c.name for c in profile.category_scores)
    scores = [c.score for c in profile.category_scores]
    assert scores == sorted(scores, reverse=True)
    assert profile.source == "api"


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (1, RiskBand.NO_RISK),
        (49.9, RiskBand.NO_RISK),
        (50, RiskBand.LOW),
        (67, RiskBand.LOW),
        (68, RiskBand.MEDIUM),
        (94, RiskBand.MEDIUM),
        (95, RiskBand.HIGH),
        (98, RiskBand.HIGH),
        (99, RiskBand.VERY_HIGH),
        (100, RiskBand.VERY_HIGH),
    ],
)
def test_bands_follow_the_vendor_thresholds(score, band):
    assert RiskBand.for_score(score) == band
    assert band.label.endswith("risk")


def test_all_bands_appear_among_sandbox_players(configure, sandbox):
    bands = {get_player_risk_profile(f"player_{i}").band for i in range(1, 201) if i % 97 and i % 89}
    assert bands == set(RiskBand)


def test_parsing_tolerates_order_extra_and_absent_fields():
    from bettorsense.profiles import parse_profile

    profile = parse_profile(
        {
            "riskScore": 70,
            "extra": {"x": 1},
            "playerId": "p",
            "categoryScores": [{"score": -1.5, "name": "Time", "key": 4}, {"name": "Losses", "key": 3, "score": 2}],
        }
    )
    assert profile.band == RiskBand.MEDIUM
    assert profile.last_updated is None and profile.percentile is None and profile.risk_category is None
    assert [c.key for c in profile.category_scores] == [3, 4]
    for bad in (
        {"riskScore": 5},
        {"playerId": "p", "riskScore": "5"},
        {"playerId": "p", "riskScore": 500},
        {"playerId": "p", "riskScore": 5, "categoryScores": [{"key": "3", "score": 1}]},
        ["p"],
    ):
        with pytest.raises(BadResponse):
            parse_profile(bad)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-03T02:00:00Z",
        "2026-12-03T02:00:00z",
        " 2026-12-03T02:00:00Z ",
        "2026-12-03T04:00:00+02:00",
        "2026-12-03T02:00:00",
        "2026-12-03T02:00:00.000Z",
        "2026-12-03 02:00:00+00:00",
    ],
)
def test_a_date_time_is_read_as_utc_in_each_form(text):
    from bettorsense.profiles import parse_datetime_utc

    assert parse_datetime_utc(text) == datetime(2026, 12, 3, 2, tzinfo=UTC)
    assert parse_datetime_utc(text).utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-03T02:00:00Z", "2026-12-03T02:00:00Q"])
def test_a_date_time_that_is_not_iso_8601_is_refused(text):
    from bettorsense.profiles import parse_datetime_utc

    with pytest.raises(ValueError):
        parse_datetime_utc(text)


class Mapping(dict):  # a dict subclass takes the general checks' path, not the exact-type one
    pass


class Count(int):
    pass


@pytest.mark.parametrize(
    "item",
    [
        {"key": True, "score": 1},
        {"key": "3", "score": 1},
        {"key": 3.0, "score": 1},
        {"key": 3, "score": False},
        {"key": 3, "score": "1"},
        {"key": 3, "score": None},
        {"key": 3},
        Mapping(key=True, score=1),
        Mapping(key=3, score=True),
        ["key", 3],
        "3",
        None,
    ],
)
def test_a_category_score_that_is_not_an_integer_key_and_a_number_is_refused(item):
    from bettorsense.profiles import parse_profile

    with pytest.raises(BadResponse, match=r"[Cc]ategory score"):
        parse_profile({"playerId": "p", "riskScore": 5, "categoryScores": [item]})


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"key": 3, "score": 2, "name": "Losses"}, (3, "Losses", 2.0)),
        ({"key": 3, "score": -1.5}, (3, "", -1.5)),
        ({"key": 3, "score": 1, "name": None}, (3, "", 1.0)),
        ({"key": 3, "score": 1, "name": 0}, (3, "", 1.0)),
        ({"key": 3, "score": 1, "name": 7}, (3, "7", 1.0)),
        (Mapping(key=Count(3), score=Count(2), name="Time"), (3, "Time", 2.0)),
    ],
)
def test_a_category_score_is_read_the_same_on_either_path(item, expected):
    from bettorsense.profiles import parse_profile

    (score,) = parse_profile({"playerId": "p", "riskScore": 5, "categoryScores": [item]}).category_scores
    assert (score.key, score.name, score.score) == expected
    assert type(score.score) is float


def test_cached_until_the_next_recompute_and_fresh_bypasses(configure, sandbox):
    first = get_player_risk_profile("player_2")
    again = get_player_risk_profile("player_2")
    assert again == first and again.source == "cache"
    assert len(api_requests(sandbox, "profile")) == 1
    assert get_player_risk_profile("player_2", fresh=True).source == "api"
    assert len(api_requests(sandbox, "profile")) == 2


def test_fresh_leaves_the_cache_alone(configure, sandbox):
    assert get_player_risk_profile("player_15", fresh=True).source == "api"
    assert get_player_risk_profile("player_15").source == "api"  # fresh did not write
    assert get_player_risk_profile("player_15").source == "cache"
    assert len(api_requests(sandbox, "profile")) == 2


def test_recompute_boundary_expires_the_cache(configure, sandbox):
    boundary = datetime.now(UTC) + timedelta(seconds=1.5)
    configure(RECOMPUTE_AT_UTC=boundary.time().isoformat())
    get_player_risk_profile("player_3")
    assert get_player_risk_profile("player_3").source == "cache"
    time.sleep(max(0.0, (boundary - datetime.now(UTC)).total_seconds()) + 0.1)
    assert get_player_risk_profile("player_3").source == "api"
    assert len(api_requests(sandbox, "profile")) == 2


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 28, 3, 59, tzinfo=UTC), datetime(2026, 11, 28, 4, 0, tzinfo=UTC)),
        (datetime(2026, 11, 28, 4, 0, tzinfo=UTC), datetime(2026, 11, 29, 4, 0, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), datetime(2027, 1, 1, 4, 0, tzinfo=UTC)),
    ],
)
def test_next_recompute(settings, now, expected):
    settings.BETTORSENSE = {**settings.BETTORSENSE, "RECOMPUTE_AT_UTC": "04:00"}
    assert next_recompute(get_config(), now) == expected


@pytest.mark.parametrize(
    ("account", "error"),
    [
        ("player_97", ProfileNotCreated),
        ("player_89", ProfileInactive),
        ("nobody", PlayerNotFound),
        ("not_created_x", ProfileNotCreated),
        ("inactive_y", ProfileInactive),
    ],
)
def test_the_three_not_found_cases_are_cached_briefly(configure, sandbox, account, error):
    with pytest.raises(error) as caught:
        get_player_risk_profile(account)
    assert caught.value.status_code == 404
    with pytest.raises(error):
        get_player_risk_profile(account)
    assert len(api_requests(sandbox, "profile")) == 1


def test_permission_error_names_package_and_ids(configure, sandbox):
    with pytest.raises(AccessDenied) as caught:
        get_player_risk_profile("player_1", bookmaker_id=999, sub_bookmaker_id=1)
    assert "package" in caught.value.hint and "BOOKMAKER_ID" in caught.value.hint


def test_missing_bookmaker_ids_is_a_configuration_error(configure):
    configure(BOOKMAKER_ID=None)
    with pytest.raises(BettorSenseConfigurationError):
        get_player_risk_profile("player_1")


# --- validation and path encoding ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bookmaker_id": -1},
        {"bookmaker_id": 2**31},
        {"bookmaker_id": True},
        {"bookmaker_id": "123"},
        {"sub_bookmaker_id": 2**31},
        {"sub_bookmaker_id": 1.5},
    ],
)
def test_bad_bookmaker_ids_are_refused_before_any_request(configure, sandbox, kwargs):
    with pytest.raises(InvalidInput):
        get_player_risk_profile("player_1", **kwargs)
    assert api_requests(sandbox) == [] and token_requests(sandbox) == 0


@pytest.mark.parametrize("account", ["", "x" * 65, "a\x00b", "tab\tin", "line\nbreak", "\x7f", "\ud800", 42, None])
def test_bad_account_ids_are_refused_before_any_request(configure, sandbox, account):
    with pytest.raises(InvalidInput):
        get_player_risk_profile(account)
    assert api_requests(sandbox) == []


def test_int32_edges_are_accepted(configure, sandbox):
    with pytest.raises(AccessDenied):
        get_player_risk_profile("player_1", bookmaker_id=0, sub_bookmaker_id=2**31 - 1)
    assert api_requests(sandbox, "profile")[0].bookmaker_id == "0"


@pytest.mark.parametrize(
    "account", ["a/b", "a?b=c", "a#frag", "100%", "%2F", "..", ".", "../../RiskProfiles", "x" * 64, "café €", " s p "]
)
def test_every_path_segment_is_encoded(configure, sandbox, account):
    with pytest.raises(PlayerNotFound):
        get_player_risk_profile(account)
    [received] = api_requests(sandbox)
    assert received.route == "profile"
    assert received.account_id == account
    assert received.bookmaker_id == "123" and received.sub_bookmaker_id == "456"


# --- retries, 401, faults -------------------------------------------------------------------


def test_retries_503_then_succeeds(configure, sandbox):
    configure(RETRY_BACKOFF=0.01)
    sandbox.state.add_fault(Fault(target="profile", kind="status", status=503, times=2))
    assert get_player_risk_profile("player_4").account_id == "player_4"
    assert [r.status for r in api_requests(sandbox)] == [503, 503, 200]


@pytest.mark.parametrize("status", [502, 504])
def test_retries_gateway_errors(configure, sandbox, status):
    configure(RETRY_BACKOFF=0.01)
    sandbox.state.add_fault(Fault(target="profile", kind="status", status=status, times=1))
    assert get_player_risk_profile("player_4").account_id == "player_4"
    assert [r.status for r in api_requests(sandbox)] == [status, 200]


def test_honours_retry_after(configure, sandbox):
    configure(RETRY_BACKOFF=0.01)
    sandbox.state.add_fault(Fault(target="profile", kind="retry_after", status=429, retry_after=1, times=1))
    started = time.monotonic()
    get_player_risk_profile("player_5")
    assert time.monotonic() - started >= 1.0  # the client waited at least what the server asked
    assert [r.status for r in api_requests(sandbox)] == [429, 200]


def test_gives_up_after_max_retries(configure, sandbox):
    configure(RETRY_BACKOFF=0.01, MAX_RETRIES=2)
    sandbox.state.add_fault(Fault(target="profile", kind="status", status=503))
    with pytest.raises(ServiceUnavailable) as caught:
        get_player_risk_profile("player_6")
    assert caught.value.status_code == 503
    assert len(api_requests(sandbox)) == 3


def test_rate_limit_beyond_the_budget_is_raised_at_once(configure, sandbox):
    configure(RETRY_BUDGET=2)
    sandbox.state.add_fault(Fault(target="profile", kind="retry_after", status=429, retry_after=30))
    with pytest.raises(RateLimited) as caught:
        get_player_risk_profile("player_6")
    assert caught.value.retry_after == 30
    assert len(api_requests(sandbox)) == 1


def test_500_is_not_retried(configure, sandbox):
    sandbox.state.add_fault(Fault(target="profile", kind="status", status=500))
    with pytest.raises(ServiceUnavailable):
        get_player_risk_profile("player_6")
    assert len(api_requests(sandbox)) == 1


def test_timeouts_are_retried_then_reported(configure, sandbox):
    configure(READ_TIMEOUT=0.3, MAX_RETRIES=1, RETRY_BACKOFF=0.01)
    sandbox.state.add_fault(Fault(target="profile", kind="slow", delay=1.0))
    with pytest.raises(ServiceUnavailable, match="timed out"):
        get_player_risk_profile("player_7")
    deadline = time.monotonic() + 5  # the sandbox records a slow request once it has answered
    while len(api_requests(sandbox)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(api_requests(sandbox)) == 2


def test_unreachable_api(configure, sandbox):
    configure(API_URL="http://127.0.0.1:9/ci/api/rg", MAX_RETRIES=1, RETRY_BACKOFF=0.01)
    with pytest.raises(ServiceUnavailable):
        get_player_risk_profile("player_7")


@pytest.mark.parametrize("kind", ["non_json", "bad_type", "missing_field"])
def test_malformed_bodies(configure, sandbox, kind):
    sandbox.state.add_fault(Fault(target="profile", kind=kind))
    with pytest.raises(BadResponse):
        get_player_risk_profile("player_8")


def test_revoked_token_costs_one_renewal_and_one_retry(configure, sandbox):
    get_player_risk_profile("player_9")
    assert token_requests(sandbox) == 1
    sandbox.state.revoke_tokens()
    assert get_player_risk_profile("player_10").account_id == "player_10"
    assert token_requests(sandbox) == 2
    assert [r.status for r in api_requests(sandbox)] == [200, 401, 200]


def test_second_401_is_an_authentication_error(configure, sandbox):
    # A production-audience token is refused by the integration prefix, every time.
    configure(AUDIENCE="mts-insight-tech")
    with pytest.raises(AuthenticationFailed):
        get_player_risk_profile("player_9")
    assert [r.status for r in api_requests(sandbox)] == [401, 401]
    assert token_requests(sandbox) == 2


# --- circuit breaker and the stale fallback --------------------------------------------------


@pytest.fixture
def breaker_clock(configure: Callable[..., dict[str, Any]]) -> Callable[..., FakeClock]:
    """Settings for the test, then the breaker of that config on a clock the test moves."""

    def apply(**overrides: Any) -> FakeClock:
        configure(**overrides)
        clock = FakeClock(time.time())
        get_breaker(get_config()).clock = clock
        return clock

    return apply


def test_breaker_opens_fails_fast_and_closes(sandbox, breaker_clock):
    clock = breaker_clock(BREAKER_THRESHOLD=2, BREAKER_COOLDOWN=1, MAX_RETRIES=0)
    sandbox.state.add_fault(Fault(target="profile", kind="status", status=503))
    for _ in range(2):
        with pytest.raises(ServiceUnavailable):
            get_player_risk_profile("player_11", fresh=True)
    breaker = get_breaker(get_config())
    assert breaker.state() == BreakerState.OPEN
    with pytest.raises(ServiceUnavailable, match="circuit breaker is open"):
        get_player_risk_profile("player_11", fresh=True)
    assert len(api_requests(sandbox)) == 2  # failed fast: no request
    sandbox.state.clear_faults()
    clock.advance(0.9)
    assert breaker.state() == BreakerState.OPEN
    clock.advance(0.2)
    assert breaker.state() == BreakerState.HALF_OPEN
    assert get_player_risk_profile("player_11", fresh=True).source == "api"
    assert breaker.state() == BreakerState.CLOSED


def test_failed_probe_reopens(sandbox, breaker_clock):
    clock = breaker_clock(BREAKER_THRESHOLD=1, BREAKER_COOLDOWN=0.5, MAX_RETRIES=0)
    sandbox.state.add_fault(Fault(target="profile", kind="status", status=503))
    with pytest.raises(ServiceUnavailable):
        get_player_risk_profile("player_12")
    clock.advance(0.6)
    with pytest.raises(ServiceUnavailable):
        get_player_risk_profile("player_12")  # the probe
    assert get_breaker(get_config()).state() == BreakerState.OPEN
    assert len(api_requests(sandbox)) == 2


def test_stale_profile_is_served_during_an_outage(configure, sandbox):
    configure(BREAKER_THRESHOLD=1, BREAKER_COOLDOWN=30, MAX_RETRIES=0)
    original = get_player_risk_profile("player_13")
    sandbox.state.add_fault(Fault(target="profile", kind="status", status=503))
    stale = get_player_risk_profile("player_13", fresh=True)
    assert stale.source == "stale" and stale.stale
    assert stale.risk_score == original.risk_score
    with pytest.raises(ServiceUnavailable):
        get_player_risk_profile("player_14")  # nothing held for this one


# --- batch --------------------------------------------------------------------------------


def test_batch_walks_every_page(configure, sandbox):
    sandbox.state.set_config(page_size=1000)
    profiles = list(iter_risk_profiles())
    ids = [p.account_id for p in profiles]
    assert len(ids) == len(set(ids)) > 4000
    pages = [int(r.query["page"]) for r in api_requests(sandbox, "batch")]
    assert pages == [1, 2, 3, 4, 5]


def test_batch_with_the_date_filter(configure, sandbox):
    sandbox.state.set_config(page_size=100)
    configure(BATCH_PAGE_SIZE=100)
    day = sandbox.state.advance_day()
    changed = list(iter_risk_profiles(changed_since=day))
    assert changed and all(p.last_updated.date() >= day for p in changed)
    batch = api_requests(sandbox, "batch")
    assert len(batch) >= 5
    assert all(r.query["changedSince"] == f"{day.isoformat()}T00:00:00Z" for r in batch)
    assert len(changed) < 1000  # only the re-scored tenth of 5000


@pytest.mark.parametrize("envelope", ["bare", "results"])
def test_batch_envelopes(configure, sandbox, envelope):
    sandbox.state.set_config(page_size=500, batch_envelope=envelope)
    configure(BATCH_PAGE_SIZE=500)
    assert len(list(iter_risk_profiles())) > 4000


def test_batch_date_parameter_is_configurable(configure, sandbox):
    sandbox.state.set_config(batch_date_param="fromDate")
    configure(BATCH_DATE_PARAM="fromDate", BATCH_DATE_FORMAT="date")
    day = sandbox.state.advance_day()
    assert list(iter_risk_profiles(changed_since=datetime.combine(day, datetime.min.time())))
    assert api_requests(sandbox, "batch")[0].query["fromDate"] == day.isoformat()


def test_batch_streams_page_by_page(configure, sandbox):
    sandbox.state.set_config(page_size=1000)
    stream = iter_risk_profiles()
    next(stream)
    assert len(api_requests(sandbox, "batch")) == 1


def test_batch_fault_on_one_page_is_raised(configure, sandbox):
    configure(MAX_RETRIES=0)
    sandbox.state.set_config(page_size=1000)
    sandbox.state.add_fault(Fault(target="batch", kind="status", status=503, page=3))
    seen = 0
    with pytest.raises(ServiceUnavailable):
        for _ in iter_risk_profiles():
            seen += 1
    assert 1000 < seen <= 2000


def test_bad_changed_since(configure, sandbox):
    with pytest.raises(InvalidInput):
        list(iter_risk_profiles(changed_since="2026-11-01"))  # type: ignore[arg-type]
    assert api_requests(sandbox) == []
