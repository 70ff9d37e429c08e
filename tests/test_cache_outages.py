"""After the cache lost an entry or went down: beat and the profile cache recover (found by ``make e2e``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.core.cache import caches

from bettorsense import cached_profiles
from bettorsense.conf import get_config
from bettorsense.services import get_player_risk_profile
from bettorsense.tokens.manager import RefreshOutcome, TokenManager
from bettorsense.tokens.token import AccessToken
from tests.support.sandbox import FakeClock, token_requests

pytestmark = pytest.mark.django_db(transaction=True)


def test_beat_offers_its_token_back_when_the_cache_lost_the_entry(configure, sandbox):
    """e2e scenario 4: after a Redis restart, beat renewed at once although every process held a valid
    token, a reuse violation at Sportradar. It now puts its own token back, as the request path does."""
    sandbox.state.set_config(enforce_reuse=True)
    config = get_config()
    beat = TokenManager(config)
    assert beat.refresh_if_due() == RefreshOutcome.RENEWED  # the first token
    first = beat.shared.read_token()
    assert isinstance(first, AccessToken)
    caches[config.cache_alias].delete(beat.shared.token_key)  # Redis restarted empty

    assert beat.refresh_if_due() == RefreshOutcome.NOT_DUE
    back = beat.shared.read_token()
    assert isinstance(back, AccessToken) and back.value == first.value
    assert token_requests(sandbox) == 1
    assert sandbox.state.stats()["reuse_violations"] == 0


def test_beat_with_no_token_of_its_own_still_renews_an_empty_cache(configure, sandbox):
    config = get_config()
    TokenManager(config).refresh_if_due()
    caches[config.cache_alias].delete(TokenManager(config).shared.token_key)
    assert TokenManager(config).refresh_if_due() == RefreshOutcome.RENEWED  # nothing to offer: renew
    assert token_requests(sandbox) == 2


@pytest.fixture
def warning_clock() -> Iterator[FakeClock]:
    """The profile cache's rate-limited warning on a clock the test moves, and not yet said."""
    warn = cached_profiles.profile_cache.warn
    real, fake = warn.clock, FakeClock()
    warn.clock = fake
    warn.reset()
    yield fake
    warn.clock = real
    warn.reset()


def test_profile_cache_outage_warns_once_per_interval_not_per_call(configure, sandbox, settings, caplog, warning_clock):
    """e2e scenario 4: with Redis down each call logged two warnings (read and write), ~200 lines a second
    under the load. The warning is now said once per 30 s and process, like the token cache's."""
    settings.CACHES = {
        **settings.CACHES,
        "dead": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        },
    }
    configure(CACHE_ALIAS="dead")
    unavailable = "Profile cache: cache 'dead' unavailable"
    with caplog.at_level(logging.DEBUG, logger="bettorsense.cached_profiles"):
        for _ in range(5):
            assert get_player_risk_profile("player_1").account_id == "player_1"
    warnings = [r for r in caplog.records if r.name == "bettorsense.cached_profiles" and r.levelno == logging.WARNING]
    debug = [
        r
        for r in caplog.records
        if r.name == "bettorsense.cached_profiles" and r.levelno == logging.DEBUG and unavailable in r.getMessage()
    ]
    assert len(warnings) == 1 and unavailable in warnings[0].getMessage()
    assert len(debug) == 9  # the other reads and writes, at DEBUG

    warning_clock.advance(29)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bettorsense.cached_profiles"):
        get_player_risk_profile("player_2")
    assert [r for r in caplog.records if r.name == "bettorsense.cached_profiles"] == []  # still quiet after 29 s

    warning_clock.advance(2)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bettorsense.cached_profiles"):
        get_player_risk_profile("player_2")
    assert len([r for r in caplog.records if r.name == "bettorsense.cached_profiles"]) == 1  # said again after 30 s
