"""django-redis with ``IGNORE_EXCEPTIONS: True`` and Redis down: errors are still seen, nobody waits.

The trial: every call blocked for TOKEN_WAIT_TIMEOUT and raised TokenWaitTimeout (the lock's ``add``
answered False, reads answered nothing), no token was requested, and health said the cache was
fine. Here Redis is a closed port on this machine: a Redis that is stopped, for real.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from redis.backoff import NoBackoff
from redis.retry import Retry

from bettorsense import locks, tokens
from bettorsense.cache import CacheUnavailable, RaisingView, backend_of, confirm_round_trip, shared_cache
from bettorsense.conf import get_config
from bettorsense.health.snapshot import take_snapshot
from bettorsense.locks import OwnerLock
from bettorsense.services import get_player_risk_profile
from bettorsense.tokens.manager import TokenManager
from tests.support.clock import WatchedClock
from tests.support.sandbox import token_requests

pytestmark = pytest.mark.django_db(transaction=True)

STOPPED_REDIS = "redis://127.0.0.1:9/0"  # the discard port: nothing listens, connections are refused


def silent_redis(**options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": STOPPED_REDIS,
        "OPTIONS": {
            "IGNORE_EXCEPTIONS": True,
            # redis-py's own default retries a refused connection ten times (seconds per call): the
            # README tells host projects to turn that off for the token cache, as here.
            "CONNECTION_POOL_KWARGS": {"retry": Retry(NoBackoff(), 0)},
            **options,
        },
    }


@pytest.fixture
def redis_down(settings: Any, configure: Any) -> None:
    settings.CACHES = {**settings.CACHES, "silent": silent_redis()}
    configure(CACHE_ALIAS="silent")


def test_the_app_reaches_django_redis_below_its_ignore_exceptions(redis_down):
    cache = shared_cache(get_config())
    assert isinstance(cache, RaisingView)
    assert backend_of(cache).get("anything") is None  # django-redis itself stays silent
    with pytest.raises(Exception, match="Connection refused"):
        cache.get("anything")


def test_a_caller_gets_a_process_local_token_without_waiting(redis_down, sandbox):
    clock = WatchedClock()
    manager = TokenManager(get_config(), clock=clock)

    token = manager.get_token()

    assert token.value
    assert not clock.slept.is_set()  # never waited for a renewal that nobody makes
    assert token_requests(sandbox) == 1
    assert manager.get_token().value == token.value  # and keeps it: no request per call
    assert token_requests(sandbox) == 1


def test_profiles_are_served_with_redis_down(redis_down, sandbox):
    assert get_player_risk_profile("player_1").account_id == "player_1"


def test_health_and_status_say_the_cache_is_unreachable(redis_down, sandbox):
    tokens.get_access_token()
    snapshot = take_snapshot()
    assert snapshot.cache is not None and snapshot.cache.reachable is False
    out = StringIO()
    call_command("bettorsense_status", stdout=out, stderr=out)  # degraded: exits 0
    assert "degraded" in out.getvalue().lower()
    assert "'silent' cannot be reached" in out.getvalue()


def test_a_cache_that_swallows_errors_unseen_is_detected_by_the_lock(redis_down, monkeypatch):
    """Some other wrapper that the app cannot see through: add() refuses, get() reads nothing."""
    monkeypatch.setattr(locks, "shared_cache", lambda config: backend_of(shared_cache(config)))
    with pytest.raises(CacheUnavailable, match="failing silently"):
        OwnerLock(get_config(), "lock", ttl=10).acquire()


def test_the_health_round_trip_catches_a_cache_that_keeps_nothing(redis_down, monkeypatch):
    monkeypatch.setattr("bettorsense.cache.raising", lambda cache: cache)  # as if the view did not exist
    with pytest.raises(CacheUnavailable, match="did not keep"):
        confirm_round_trip(get_config())
