"""The last API call, recorded by client.get_json for the fleet, cheaply."""

from __future__ import annotations

import pytest

from bettorsense import telemetry
from bettorsense.conf import get_config
from bettorsense.exceptions import PlayerNotFound, ServiceUnavailable
from bettorsense.sandbox import Fault
from bettorsense.services import get_player_risk_profile
from bettorsense.tokens.manager import TokenManager

pytestmark = pytest.mark.django_db


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(telemetry, "_clock", fake)
    monkeypatch.setattr(telemetry, "_api_written", {})
    return fake


@pytest.fixture
def writes(monkeypatch):
    """The cache writes of the last-API-call record."""
    seen: list[dict] = []
    real = telemetry._cache_set

    def spy(config, name, value, ttl):
        if name == "state:last_api_call":
            seen.append(value)
        real(config, name, value, ttl)

    monkeypatch.setattr(telemetry, "_cache_set", spy)
    return seen


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
    config = get_config()
    for _ in range(100):
        telemetry.record_api_call(config, None, 0.01)
    assert len(writes) == 1
    clock.now += 0.99
    telemetry.record_api_call(config, None, 0.01)
    assert len(writes) == 1
    clock.now += 0.02
    telemetry.record_api_call(config, None, 0.02)
    assert len(writes) == 2 and writes[-1]["latency"] == 0.02


def test_a_flip_between_answered_and_failing_is_written_at_once(configure, clock, writes):
    config = get_config()
    telemetry.record_api_call(config, None, 0.01)
    telemetry.record_api_call(config, PlayerNotFound("x", status_code=404), 0.01)  # still answered: throttled
    assert len(writes) == 1
    telemetry.record_api_call(config, ServiceUnavailable("down", status_code=503), 0.5)
    assert len(writes) == 2 and writes[-1]["outcome"] == "ServiceUnavailable"
    telemetry.record_api_call(config, ServiceUnavailable("down", status_code=503), 0.5)
    assert len(writes) == 2
    telemetry.record_api_call(config, None, 0.01)
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
