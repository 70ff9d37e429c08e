"""Token lifecycle against the sandbox over real HTTP, on the configured cache.

Token lifetimes pass on a :class:`FakeClock` that the managers and the sandbox share; the tests of
threads waiting for one another run on real time, their interleaving forced with events.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.core.cache import caches
from django.db import connections

from bettorsense import tokens
from bettorsense.conf import get_config
from bettorsense.exceptions import (
    AudienceNotAllowed,
    InvalidCredentials,
    MalformedTokenResponse,
    TokenBackoff,
    TokenEndpointUnreachable,
    TokenRateLimited,
    TokenServerError,
    TokenTimeout,
    TokenWaitTimeout,
)
from bettorsense.sandbox import Fault
from bettorsense.tokens.endpoint import TokenEndpoint
from bettorsense.tokens.manager import RefreshOutcome, TokenManager, TokenTiming
from bettorsense.tokens.shared import SharedTokenCache
from bettorsense.tokens.token import AccessToken, Tombstone
from tests.support.clock import FakeClock, WatchedClock
from tests.support.sandbox import CLIENT_SECRET, token_requests
from tests.support.threads import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)


def issued(sandbox: Any) -> int:
    return sandbox.state.stats()["tokens"]["issued"]


def token_in(manager: TokenManager, clock: FakeClock, seconds: float) -> None:
    """Move time on until the shared token has at most ``seconds`` left."""
    token = manager.peek()
    assert token is not None
    clock.advance(max(0.0, token.seconds_left(clock.now()) - seconds))


class GatedEndpoint(TokenEndpoint):
    """The real endpoint, held at the door: :attr:`entered` is set once a request would be sent (the
    caller holds the fleet's renewal lock by then), and the request goes out once :attr:`opened` is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.opened = threading.Event()

    def close(self) -> None:
        self.entered.clear()
        self.opened.clear()

    def request_token(self) -> AccessToken:
        self.entered.set()
        assert self.opened.wait(10), "the test never opened the gate"
        return super().request_token()


class InThread(threading.Thread):
    """Runs ``call`` in a thread of its own; :meth:`result` joins it and returns or raises what it did."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.value: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.call()
        except BaseException as err:  # handed to the test by result()
            self.error = err
        finally:
            connections.close_all()

    def result(self) -> Any:
        self.join(10)
        assert not self.is_alive(), "the thread is still running"
        if self.error is not None:
            raise self.error
        return self.value


# --- the request and the cache ------------------------------------------------------------------


def test_first_call_fetches_and_later_calls_reuse(configure, sandbox):
    first = tokens.get_access_token()
    assert first.count(".") == 2  # JWT-shaped
    assert [tokens.get_access_token() for _ in range(50)] == [first] * 50
    assert issued(sandbox) == 1


def test_expiry_clock_starts_when_the_request_is_sent(configure, sandbox):
    sandbox.state.add_fault(Fault(target="token", kind="slow", delay=1.0, times=1))
    before = time.time()
    token = tokens.get_token()
    assert before <= token.issued_at < before + 0.5
    # Counted from the send time, and never past the JWT's exp claim (whole seconds at the issuer).
    assert token.issued_at + 598 < token.expires_at <= token.issued_at + 600
    assert token.expires_at <= _exp_claim(token.value)


def _exp_claim(value: str) -> float:
    payload = value.split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


def test_a_token_that_is_not_a_jwt_keeps_its_expires_in():
    from bettorsense.tokens import parse_token_response

    response = requests.Response()
    response.status_code = 200
    response._content = b'{"access_token": "opaque-token-value", "expires_in": 600, "token_type": "Bearer"}'
    token = parse_token_response(response, sent_at=1000.25)
    assert token.expires_at == 1600.25 and token.issued_at == 1000.25


def test_lifetime_comes_from_expires_in(configure, sandbox):
    sandbox.state.set_config(token_lifetime=300)
    token = tokens.get_token()
    assert 299 < token.lifetime <= 300


@pytest.mark.parametrize(
    ("lifetime", "window", "safety"),
    [(600, 30.0, 5.0), (300, 30.0, 5.0), (100, 10.0, 2.5), (20, 2.0, 0.5)],
)
def test_renewal_window_is_min_of_margin_and_ten_percent(configure, lifetime, window, safety):
    token = AccessToken(value="x", token_type="Bearer", issued_at=1000.0, expires_at=1000.0 + lifetime)
    timing = TokenTiming.of(token, get_config())
    assert token.expires_at - timing.renew_at == pytest.approx(window)
    assert token.expires_at - timing.lazy_renew_at == pytest.approx(window / 2)
    assert token.expires_at - timing.usable_until == pytest.approx(safety)


def test_cached_token_is_encrypted_and_authenticated(configure, sandbox, settings):
    token = tokens.get_access_token()
    store = SharedTokenCache(get_config())
    raw = caches[get_config().cache_alias].get(store.token_key)
    assert isinstance(raw, str)
    assert token not in raw
    assert token.split(".")[1] not in raw
    # Sealed under another key, the entry reads as absent: the token cannot be recovered.
    configure(TOKEN_ENCRYPTION_KEY="another key entirely")
    assert SharedTokenCache(get_config()).read_token() is None


def test_cache_key_separates_credentials_and_environments(configure, sandbox):
    integration = get_config()
    configure(AUDIENCE="mts-insight-tech", API_URL=sandbox.api_url("production"))
    production = get_config()
    configure(CLIENT_ID="other-client")
    other_client = get_config()
    keys = {SharedTokenCache(c).token_key for c in (integration, production, other_client)}
    assert len(keys) == 3
    assert all("demo-client" not in key for key in keys)


def test_memo_sees_a_renewal_by_another_process_after_recheck(configure, sandbox, clock):
    configure(LOCAL_RECHECK=0.2)
    config = get_config()
    here, elsewhere = TokenManager(config, clock=clock), TokenManager(config, clock=clock)
    old = here.get_token()
    new = elsewhere.force_refresh()
    assert new.value != old.value
    assert here.get_token().value == old.value  # memo, within LOCAL_RECHECK
    clock.advance(0.3)
    assert here.get_token().value == new.value


# --- single flight ------------------------------------------------------------------------------


def test_one_request_for_many_threads_and_processes_without_a_token(configure, sandbox):
    config = get_config()
    managers = [TokenManager(config) for _ in range(4)]  # four "processes", four threads each
    sandbox.state.add_fault(Fault(target="token", kind="slow", delay=0.5, times=1))
    results = run_in_threads(lambda: [m.get_token().value for m in managers], 4)
    values = {value for result in results for value in result}
    assert len(values) == 1, results
    assert issued(sandbox) == 1


def test_others_keep_the_current_token_while_one_renews(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=10)
    configure(EXPIRY_SAFETY=0.05)  # usable until 0.05 s before expiry; lazy renewal from 0.5 s
    config = get_config()
    gate = GatedEndpoint(config, clock)
    renewer, other = TokenManager(config, clock=clock, endpoint=gate), TokenManager(config, clock=clock)
    gate.opened.set()
    old = renewer.get_token()
    assert other.get_token().value == old.value
    token_in(renewer, clock, 0.45)  # inside the lazy half of the 1 s window, still usable
    gate.close()
    renewing = InThread(renewer.get_token)
    assert gate.entered.wait(10)  # the renewer holds the fleet lock now
    assert other.get_token().value == old.value
    gate.opened.set()
    assert renewing.result().value != old.value
    assert renewer.get_token().value != old.value
    assert issued(sandbox) == 2


def test_caller_without_token_waits_for_the_renewer(configure, sandbox):
    config = get_config()
    gate, waiting = GatedEndpoint(config), WatchedClock()
    renewer, waiter = TokenManager(config, endpoint=gate), TokenManager(config, clock=waiting)
    renewing = InThread(renewer.get_token)
    assert gate.entered.wait(10)  # the renewer holds the fleet lock
    waited = InThread(waiter.get_token)
    assert waiting.slept.wait(10)  # the waiter found no token and the lock taken: it waits
    gate.opened.set()
    assert waited.result().value == renewing.result().value
    assert waiter.fetch_counts == {}
    assert issued(sandbox) == 1


def test_waiting_is_bounded(configure, sandbox):
    configure(TOKEN_WAIT_TIMEOUT=0.5, READ_TIMEOUT=3.0)
    config = get_config()
    gate = GatedEndpoint(config)
    renewer, waiter = TokenManager(config, endpoint=gate), TokenManager(config, clock=FakeClock())
    renewing = InThread(renewer.get_token)
    assert gate.entered.wait(10)  # the renewer holds the fleet lock, and keeps it
    with pytest.raises(TokenWaitTimeout):
        waiter.get_token()  # half a second of (fake) polling, and the bound is reached
    assert not gate.opened.is_set()  # the bound ended the wait, not a renewal
    gate.opened.set()
    renewing.result()


def test_the_renewal_lock_is_freed_and_extended_only_by_its_owner(configure):
    lock = SharedTokenCache(get_config()).renewal_lock
    owner = lock.acquire()
    assert owner is not None and lock.acquire() is None
    assert lock.holder() == owner
    assert not lock.refresh("another-owner")
    lock.release("another-owner")
    assert lock.holder() == owner
    assert lock.refresh(owner)
    lock.release(owner)
    assert lock.holder() is None
    assert lock.acquire() is not None


# --- renewal by beat and lazily -----------------------------------------------------------------


def test_refresh_if_due_renews_only_inside_the_window(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=10)
    manager = TokenManager(get_config(), clock=clock)
    assert manager.refresh_if_due() == RefreshOutcome.RENEWED  # no token yet
    first = manager.peek()
    assert manager.refresh_if_due() == RefreshOutcome.NOT_DUE
    token_in(manager, clock, 0.9)
    assert manager.refresh_if_due() == RefreshOutcome.RENEWED
    second = manager.peek()
    assert first is not None and second is not None
    assert second.value != first.value
    assert issued(sandbox) == 2


def test_request_path_leaves_the_first_half_of_the_window_to_beat(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=10)
    manager = TokenManager(get_config(), clock=clock)
    old = manager.get_token()
    token_in(manager, clock, 0.8)  # in the window, before the lazy half
    assert manager.get_token().value == old.value
    assert manager.fetch_counts == {"request": 1}
    token_in(manager, clock, 0.4)  # lazy half: the request path renews
    assert manager.get_token().value != old.value
    assert manager.fetch_counts == {"request": 2}


def test_reuse_rule_is_never_violated(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=4, enforce_reuse=True)
    config = get_config()
    managers = [TokenManager(config, clock=clock) for _ in range(3)]
    deadline = clock.now() + 9
    seen = set()
    while clock.now() < deadline:
        for manager in managers:
            token = manager.get_token()
            assert token.seconds_left(clock.now()) > 0
            seen.add(token.value)
        clock.advance(0.01)
    assert sandbox.state.stats()["reuse_violations"] == 0
    assert 3 <= issued(sandbox) <= 4
    assert len(seen) == issued(sandbox)


def test_token_is_never_sent_within_the_safety_margin(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=4)
    manager = TokenManager(get_config(), clock=clock)
    token = manager.get_token()
    sandbox.state.add_fault(Fault(target="token", kind="status", status=503))
    timing = TokenTiming.of(token, get_config())
    served, served_late = 0, []
    while clock.now() < token.expires_at + 0.2:
        asked_at = clock.now()
        try:
            value = manager.get_token().value
        except (TokenServerError, TokenBackoff):
            continue
        else:
            served += 1
            if asked_at >= timing.usable_until and value == token.value:
                served_late.append(asked_at)
        finally:
            clock.advance(0.01)
    assert served > 0
    assert served_late == []


# --- failures -----------------------------------------------------------------------------------

FAILURES = [
    pytest.param({"CLIENT_SECRET": "wrong-secret"}, None, InvalidCredentials, id="bad-secret"),
    pytest.param({"CLIENT_ID": "nobody"}, None, InvalidCredentials, id="unknown-client"),
    pytest.param({"AUDIENCE": "mts-insight-tech-unknown"}, None, AudienceNotAllowed, id="unknown-audience"),
    pytest.param({}, Fault(target="token", kind="status", status=500), TokenServerError, id="500"),
    pytest.param({}, Fault(target="token", kind="status", status=503), TokenServerError, id="503"),
    pytest.param({}, Fault(target="token", kind="retry_after", status=429, retry_after=7), TokenRateLimited, id="429"),
    pytest.param({"READ_TIMEOUT": 0.3}, Fault(target="token", kind="slow", delay=1.0), TokenTimeout, id="slow"),
    pytest.param({"READ_TIMEOUT": 0.3}, Fault(target="token", kind="hang"), TokenTimeout, id="hang"),
    pytest.param({}, Fault(target="token", kind="non_json"), MalformedTokenResponse, id="non-json"),
    pytest.param({}, Fault(target="token", kind="missing_field"), MalformedTokenResponse, id="missing-field"),
    pytest.param({}, Fault(target="token", kind="bad_type"), MalformedTokenResponse, id="bad-type"),
    pytest.param({"TOKEN_URL": "http://127.0.0.1:9/oauth/token"}, None, TokenEndpointUnreachable, id="refused"),
]


@pytest.mark.parametrize(("overrides", "fault", "expected"), FAILURES)
def test_each_failure_is_a_typed_error_with_a_hint(configure, sandbox, overrides, fault, expected):
    configure(**overrides)
    if fault is not None:
        sandbox.state.add_fault(fault)
    with pytest.raises(expected) as caught:
        tokens.get_access_token()
    assert caught.value.hint
    assert CLIENT_SECRET not in str(caught.value) and "wrong-secret" not in str(caught.value)


def test_audience_not_granted_to_the_client(configure, sandbox):
    sandbox.state.add_client("integration-only", "s3cret-value", audiences={"mts-insight-tech-non-prod"})
    configure(CLIENT_ID="integration-only", CLIENT_SECRET="s3cret-value", AUDIENCE="mts-insight-tech")
    with pytest.raises(AudienceNotAllowed):
        tokens.get_access_token()


def test_retry_after_sets_the_fleet_backoff(configure, sandbox):
    sandbox.state.add_fault(Fault(target="token", kind="retry_after", status=429, retry_after=30, times=1))
    with pytest.raises(TokenRateLimited) as caught:
        tokens.get_access_token()
    assert caught.value.retry_after == 30
    other = TokenManager(get_config())  # another process, same cache
    with pytest.raises(TokenBackoff) as backing_off:
        other.get_token()
    assert backing_off.value.retry_after is not None and backing_off.value.retry_after > 25
    assert token_requests(sandbox) == 1


def test_backoff_grows_then_clears_after_success(configure, sandbox, clock):
    configure(BACKOFF_BASE=0.2, BACKOFF_MAX=5)
    sandbox.state.add_fault(Fault(target="token", kind="status", status=503))
    manager = TokenManager(get_config(), clock=clock)
    attempts = 0
    deadline = clock.now() + 2.0
    while clock.now() < deadline:
        try:
            manager.get_token()
        except TokenServerError:
            attempts += 1
        except TokenBackoff:
            pass
        clock.advance(0.01)
    # Delays 0.2, 0.4, 0.8, 1.6 s (±20%): at most 5 requests fit in 2 s, however often callers ask.
    assert 2 <= attempts <= 5
    assert token_requests(sandbox) == attempts
    sandbox.state.clear_faults()
    clock.advance(2.0)
    assert manager.get_token().value
    assert manager.shared.read_backoff() is None


def test_outage_keeps_serving_the_valid_token(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=10)
    manager = TokenManager(get_config(), clock=clock)
    token = manager.get_token()
    sandbox.state.add_fault(Fault(target="token", kind="status", status=503))
    token_in(manager, clock, 0.4)  # lazy renewal is due, and fails
    assert manager.get_token().value == token.value
    assert manager.get_token().value == token.value
    assert token_requests(sandbox) <= 3


# --- invalidation and the cache going away --------------------------------------------------


def test_invalidate_only_the_exact_current_token(configure, sandbox):
    config = get_config()
    manager, other = TokenManager(config), TokenManager(config)
    first = manager.get_token()
    assert not manager.invalidate("not-the-token")
    assert manager.peek() == first
    assert manager.invalidate(first.value)
    assert isinstance(manager.shared.read_token(), Tombstone)
    second = other.get_token()
    assert second.value != first.value
    assert not manager.invalidate(first.value)  # stale: the fleet has moved on
    assert manager.get_token().value == second.value
    assert issued(sandbox) == 2


def test_cache_server_down_falls_back_to_a_process_local_token(configure, sandbox, settings, caplog):
    settings.CACHES = {
        **settings.CACHES,
        "dead": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        },
    }
    configure(CACHE_ALIAS="dead")
    manager = TokenManager(get_config())
    with caplog.at_level("WARNING", logger="bettorsense"):
        first = manager.get_token()
        assert manager.get_token().value == first.value
    assert issued(sandbox) == 1
    assert any("unavailable" in record.getMessage() for record in caplog.records)
    assert manager.refresh_if_due() == RefreshOutcome.CACHE_UNAVAILABLE


def test_cache_that_lost_the_entry_gets_the_token_back(configure, sandbox, clock):
    configure(LOCAL_RECHECK=0.1)
    config = get_config()
    manager, other = TokenManager(config, clock=clock), TokenManager(config, clock=clock)
    token = manager.get_token()
    caches[config.cache_alias].delete(manager.shared.token_key)  # eviction or restart
    clock.advance(0.15)
    assert manager.get_token().value == token.value
    assert other.get_token().value == token.value
    assert issued(sandbox) == 1
