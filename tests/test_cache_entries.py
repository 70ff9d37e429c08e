"""Every shared entry is sealed, bound to its key, checked on read, and its deadline capped.

Each test writes what the issue's review wrote (a foreign value, a copy under another key, a
deadline far ahead) into the real cache and calls the app as a user would.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.test import RequestFactory

from bettorsense import entries, services, tokens
from bettorsense.cache import cache_key
from bettorsense.client.breaker import BreakerState, CircuitBreaker, get_breaker
from bettorsense.conf import get_config
from bettorsense.exceptions import ServiceUnavailable, TokenServerError
from bettorsense.sealing import FORMAT_VERSION, seal
from bettorsense.services import get_player_risk_profile
from bettorsense.tokens.manager import TokenManager
from bettorsense.tokens.token import AccessToken
from bettorsense.views import health
from tests.support.clock import FakeClock
from tests.support.sandbox import token_requests

HEALTH_KEY = "h" * 40

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _warnings_not_yet_said() -> None:
    entries.reset_warnings()


def cache() -> Any:
    return caches[get_config().cache_alias]


def health_status() -> int:
    request = RequestFactory().get("/bettorsense/health/", HTTP_AUTHORIZATION=f"Bearer {HEALTH_KEY}")
    return health(request).status_code


# --- the breaker --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry", [{"failures": 5}, {"until": "soon"}, {"until": float("inf")}, 7, "bs1.forged", b"\x80\x04"]
)
def test_a_foreign_breaker_entry_neither_fails_calls_nor_opens_the_breaker(configure, sandbox, entry, caplog):
    configure(HEALTH_TOKEN=HEALTH_KEY)
    breaker = get_breaker(get_config())
    cache().set(breaker.open_key, entry, None)
    with caplog.at_level(logging.WARNING, logger="bettorsense.entries"):
        assert get_player_risk_profile("player_1").account_id == "player_1"
        assert health_status() in (200, 503)
    assert breaker.state() is BreakerState.CLOSED
    assert cache().get(breaker.open_key) is None  # removed
    said = [r for r in caplog.records if "breaker open" in r.getMessage()]
    assert len(said) == 1 and str(entry) not in said[0].getMessage()


def test_a_sealed_breaker_deadline_is_capped_at_the_cooldown(configure, sandbox):
    configure(BREAKER_COOLDOWN=30)
    clock = FakeClock()
    breaker = CircuitBreaker(get_config(), clock=clock)
    opened = seal(get_config(), {"until": clock() + 10**9, "failures": 5}, key=breaker.open_key, kind="breaker open")
    cache().set(breaker.open_key, opened, 3600)
    with pytest.raises(ServiceUnavailable) as caught:
        breaker.before_call()
    assert caught.value.retry_after == 30.0
    clock.advance(30)
    assert breaker.state() is BreakerState.HALF_OPEN


def test_a_foreign_probe_entry_without_expiry_does_not_stop_the_half_open_probe(configure, sandbox):
    clock = FakeClock()
    breaker = CircuitBreaker(get_config(), clock=clock)
    opened = seal(get_config(), {"until": clock() - 1, "failures": 5}, key=breaker.open_key, kind="breaker open")
    cache().set(breaker.open_key, opened, 3600)
    cache().set(breaker.probe_key, 7, None)  # what the review wrote: no expiry, not ours
    breaker.before_call()  # this call is the probe
    with pytest.raises(ServiceUnavailable, match="another call is probing"):
        CircuitBreaker(get_config(), clock=clock).before_call()  # and it is the only one


def test_a_probe_past_its_deadline_is_taken_over(configure, sandbox):
    clock = FakeClock()
    breaker = CircuitBreaker(get_config(), clock=clock)
    opened = seal(get_config(), {"until": clock() - 1, "failures": 5}, key=breaker.open_key, kind="breaker open")
    cache().set(breaker.open_key, opened, 3600)
    stuck = seal(get_config(), {"until": clock() - 1, "pid": 1}, key=breaker.probe_key, kind="breaker probe")
    cache().set(breaker.probe_key, stuck, None)
    breaker.before_call()
    assert cache().get(breaker.probe_key) != stuck


@pytest.mark.parametrize("count", ["five", -3, 10**12, 2.5])
def test_a_foreign_breaker_counter_counts_as_none(configure, sandbox, count):
    breaker = get_breaker(get_config())
    cache().set(breaker.failures_key, count, None)
    assert breaker.state() is BreakerState.CLOSED
    assert get_player_risk_profile("player_1").account_id == "player_1"


# --- the token, tombstone and backoff -----------------------------------------------------------


def other_credentials_key(settings: Any) -> tuple[str, dict[str, Any]]:
    other = {**settings.BETTORSENSE, "CLIENT_ID": "another-client"}
    settings.BETTORSENSE = other
    key = TokenManager(get_config()).shared.token_key
    return key, other


def test_a_token_copied_to_another_credential_sets_key_is_refused(configure, sandbox, settings):
    first = configure()
    issued = tokens.get_token().value
    sealed = cache().get(TokenManager(get_config()).shared.token_key)
    other_key, _ = other_credentials_key(settings)
    cache().set(other_key, sealed, 600)
    shared = TokenManager(get_config()).shared
    assert shared.read_token() is None
    assert cache().get(other_key) is None  # removed
    settings.BETTORSENSE = first
    assert tokens.get_token().value == issued  # the original still serves its own set


def test_an_entry_of_another_format_version_is_absent_and_left_alone(configure, sandbox):
    shared = TokenManager(get_config()).shared
    newer = f"bs{FORMAT_VERSION + 1}.whatever-a-newer-app-writes"
    cache().set(shared.token_key, newer, 600)
    assert shared.read_token() is None
    assert cache().get(shared.token_key) == newer


def test_a_sealed_token_with_an_impossible_lifetime_is_malformed(configure, sandbox):
    shared = TokenManager(get_config()).shared
    now = shared.clock.now()
    for issued_at, expires_at in ((now, now + 10 * 86400), (now, now - 1), (now + 10 * 86400, now + 11 * 86400)):
        payload = {"v": "t" * 40, "t": "Bearer", "i": issued_at, "e": expires_at}
        cache().set(shared.token_key, seal(get_config(), payload, key=shared.token_key, kind="token"), 600)
        assert shared.read_token() is None
        assert cache().get(shared.token_key) is None


def test_a_token_sealed_as_another_kind_is_refused(configure, sandbox):
    shared = TokenManager(get_config()).shared
    token = AccessToken("t" * 40, "Bearer", shared.clock.now(), shared.clock.now() + 600)
    payload = {"v": token.value, "t": token.token_type, "i": token.issued_at, "e": token.expires_at}
    cache().set(shared.token_key, seal(get_config(), payload, key=shared.token_key, kind="backoff"), 600)
    assert shared.read_token() is None


@pytest.mark.parametrize("count", ["x", 10**12, [1]])
def test_a_foreign_failure_counter_starts_again(configure, sandbox, count):
    shared = TokenManager(get_config()).shared
    cache().set(shared.failures_key, count, None)
    assert shared.count_failure() == 1
    assert shared.count_failure() == 2


def test_malformed_entries_are_logged_once_per_kind_not_per_read(configure, sandbox, caplog):
    shared = TokenManager(get_config()).shared
    with caplog.at_level(logging.DEBUG, logger="bettorsense.entries"):
        for _ in range(5):
            cache().set(shared.backoff_key, {"until": "soon"}, 600)
            assert shared.read_backoff() is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'backoff'" in warnings[0].getMessage()


def test_a_one_second_backoff_outlives_the_next_whole_second(configure, sandbox):
    """Django's database cache cuts expiry times down to whole seconds: written at x.9 s with a 1 s
    TTL, an entry was gone at x+1.0 s. The backoff must last its delay on every cache."""
    shared = TokenManager(get_config()).shared
    while time.time() % 1 < 0.85:  # write late in a second, so that the next boundary comes first
        time.sleep(0.02)
    written = time.time()
    shared.write_backoff(TokenServerError("The token endpoint failed. (HTTP 503)"), 1.0)
    time.sleep(max(0.0, math.floor(written) + 1.05 - time.time()))  # just past the boundary
    assert time.time() < written + 1.0  # still inside the delay
    backoff = shared.read_backoff()
    assert backoff is not None and backoff.until > time.time()


# --- the profile cache --------------------------------------------------------------------------


def profile_key(account: str) -> str:
    return services.profile_cache_key(get_config(), 123, 456, account)


def test_a_profile_entry_copied_to_another_player_is_not_served(configure, sandbox):
    asked = get_player_risk_profile("player_2", fresh=True)
    get_player_risk_profile("player_1")
    cache().set(profile_key("player_2"), cache().get(profile_key("player_1")), 600)
    served = get_player_risk_profile("player_2")
    assert (served.account_id, served.risk_score) == ("player_2", asked.risk_score)


def test_a_forged_profile_entry_is_not_served(configure, sandbox):
    asked = get_player_risk_profile("player_3", fresh=True)
    forged = {"profile": {"playerId": "player_3", "riskScore": 0}, "fresh_until": 10**10}
    cache().set(profile_key("player_3"), forged, 600)
    served = get_player_risk_profile("player_3")
    assert served.risk_score == asked.risk_score and str(served.source) == "api"


def test_a_sealed_profile_that_does_not_parse_is_malformed(configure, sandbox):
    key = profile_key("player_4")
    entry = seal(get_config(), {"profile": {"playerId": "player_4"}, "fresh_until": 10**10}, key=key, kind="profile")
    cache().set(key, entry, 600)
    assert get_player_risk_profile("player_4").account_id == "player_4"
    assert cache().get(key) != entry


def test_a_remembered_404_is_capped_at_not_found_ttl(configure, sandbox):
    from bettorsense.cached_profiles import CachedMiss, read

    configure(NOT_FOUND_TTL=60)
    key = profile_key("player_5")
    entry = seal(get_config(), {"missing": "PlayerNotFound", "until": 10**10}, key=key, kind="profile")
    cache().set(key, entry, 600)
    found = read(get_config(), key, 1000.0)
    assert isinstance(found, CachedMiss) and found.until == 1060.0


# --- telemetry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("state:beat", {"outcome": "ok"}),
        ("state:last_renewal", {"at": "yesterday"}),
        ("state:last_api_call", [1, 2]),
        ("count:requests:m{minute}", "not a count"),
        ("count:renewals:h{hour}", -5),
    ],
)
def test_foreign_telemetry_entries_leave_the_health_endpoint_answering(configure, sandbox, name, value):
    import time

    configure(HEALTH_TOKEN=HEALTH_KEY)
    tokens.get_token()
    now = time.time()
    key = cache_key(get_config(), name.format(minute=int(now // 60), hour=int(now // 3600)))
    cache().set(key, value, 600)
    assert health_status() in (200, 503)
    assert cache().get(key) is None
    assert token_requests(sandbox) == 1
