"""The last API call, recorded by client.get_json for the fleet, cheaply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import caches

from bettorsense import telemetry
from bettorsense.cache import cache_key
from bettorsense.conf import get_config
from bettorsense.exceptions import BettorSenseError, PlayerNotFound, ServiceUnavailable
from bettorsense.sandbox import Fault
from bettorsense.sealing import unseal
from bettorsense.services import get_player_risk_profile
from bettorsense.tokens.manager import TokenManager
from tests.support.sandbox import FakeClock

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(configure: Callable[..., dict[str, Any]]) -> FakeClock:
    """The API-call throttle of this test's config runs on a clock the test moves."""
    fake = FakeClock(now=1000.0)
    telemetry.api_call_throttle(get_config()).clock = fake
    return fake


class RecordedWrites(list[dict[str, Any]]):
    """Records API calls and keeps what each wrote to the cache, taking the entry out after each call."""

    def __init__(self) -> None:
        super().__init__()
        self.config = get_config()
        self.cache = caches[self.config.cache_alias]
        self.key = cache_key(self.config, "state:last_api_call")
        self.cache.delete(self.key)

    def record(self, error: BettorSenseError | None, latency: float) -> None:
        telemetry.record_api_call(self.config, error, latency)
        written = unseal(self.config, self.cache.get(self.key), key=self.key, kind="telemetry")
        if written is not None:
            self.append(written)
            self.cache.delete(self.key)


@pytest.fixture
def writes(configure: Callable[..., dict[str, Any]]) -> RecordedWrites:
    return RecordedWrites()


def test_the_client_records_outcome_status_and_latency(configure, sandbox):
    get_player_risk_profile("player_1", fresh=True)
    call = telemetry.read_api_call(get_config())
    assert call is not None
    assert (call.outcome, call.status, call.answered) == ("ok", 200, True)
    assert 0 < call.latency < 10


def test_a_404_is_recorded_as_answered(configure, sandbox):
    with pytest.raises(PlayerNotFound):
        get_player_risk_profile("nobody_at_all", fresh=True)
    call = telemetry.read_api_call(get_config())
    assert (call.outcome, call.status, call.answered) == ("PlayerNotFound", 404, True)


def test_a_failure_is_recorded_as_not_answered(configure, sandbox):
    configure(MAX_RETRIES=0)
    sandbox.state.add_fault(Fault(target="api", kind="status", status=500))
    with pytest.raises(ServiceUnavailable):
        get_player_risk_profile("player_1", fresh=True)
    call = telemetry.read_api_call(get_config())
    assert (call.outcome, call.status, call.answered) == ("ServiceUnavailable", 500, False)


def test_writes_are_throttled_to_one_a_second_per_process(configure, clock, writes):
    for _ in range(100):
        writes.record(None, 0.01)
    assert len(writes) == 1
    clock.now += 0.99
    writes.record(None, 0.01)
    assert len(writes) == 1
    clock.now += 0.02
    writes.record(None, 0.02)
    assert len(writes) == 2 and writes[-1]["latency"] == 0.02


def test_a_flip_between_answered_and_failing_is_written_at_once(configure, clock, writes):
    writes.record(None, 0.01)
    writes.record(PlayerNotFound("x", status_code=404), 0.01)  # still answered: throttled
    assert len(writes) == 1
    writes.record(ServiceUnavailable("down", status_code=503), 0.5)
    assert len(writes) == 2 and writes[-1]["outcome"] == "ServiceUnavailable"
    writes.record(ServiceUnavailable("down", status_code=503), 0.5)
    assert len(writes) == 2
    writes.record(None, 0.01)
    assert len(writes) == 3 and writes[-1]["outcome"] == "ok"


def test_the_record_is_shared_by_the_fleet(configure, sandbox):
    config = get_config()
    TokenManager(config).get_token()
    get_player_risk_profile("player_3", fresh=True)
    configure()  # a new Config object: what another process would build
    assert telemetry.read_api_call(get_config()) is not None


def test_a_broken_cache_never_breaks_a_call(configure, sandbox, settings):
    settings.CACHES = {
        **settings.CACHES,
        "dead": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        },
    }
    configure(CACHE_ALIAS="dead")
    assert get_player_risk_profile("player_1", fresh=True).account_id == "player_1"
