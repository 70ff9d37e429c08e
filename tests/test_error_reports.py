"""No secret in any error report: Django's technical 500 page (HTML and text, DEBUG on and off) and a
Sentry-style collector of every frame's local variables, for a failure injected at each stage.

The stages: the token POST, parsing its answer, the API call, a settings error, a corrupt cache
entry, the health snapshot and the probe. Canary credentials make a leak easy to find: the client
secret, the health key, ``SECRET_KEY`` (the default encryption key) and every token value in play
are searched for, and so is anything shaped like a JWT. The search is proved on a planted canary:
a function that keeps the secret in a local must be found.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.ciphers import aead
from django.core.cache import caches
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from bettorsense import tokens
from bettorsense.cache import cache_key
from bettorsense.conf import get_config
from bettorsense.health import probe, snapshot
from bettorsense.sandbox import Fault
from bettorsense.services import get_player_risk_profile
from bettorsense.views import health
from tests.support import health_states
from tests.support.error_reports import frame_variables

pytestmark = pytest.mark.django_db(transaction=True)

CANARY_ID = "report-canary-client-51c2"
CANARY_SECRET = "S3cret-report-canary-never-shown"
CANARY_KEY = "monitor-key-report-canary-9931"
CANARY_SECRET_KEY = "django-secret-key-report-canary-0d8e5f1a2b3c4d5e6f708192a3b4c5d6"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType]


@pytest.fixture
def canary(configure, sandbox, settings):
    settings.SECRET_KEY = CANARY_SECRET_KEY
    sandbox.state.add_client(CANARY_ID, CANARY_SECRET)

    def apply(**overrides: Any) -> dict[str, Any]:
        return configure(CLIENT_ID=CANARY_ID, CLIENT_SECRET=CANARY_SECRET, HEALTH_TOKEN=CANARY_KEY, **overrides)

    apply()
    return apply


def failure_of(call: Callable[[], Any]) -> ExcInfo | None:
    try:
        call()
    except BaseException:  # MemoryError and RecursionError included: what reaches a 500 page
        exc_type, value, tb = sys.exc_info()
        assert exc_type is not None and value is not None and tb is not None
        return exc_type, value, tb
    return None


def reports(exc_info: ExcInfo, settings: Any) -> dict[str, str]:
    request = RequestFactory().get("/bettorsense/health/")
    rendered: dict[str, str] = {}
    for debug in (True, False):
        settings.DEBUG = debug
        reporter = ExceptionReporter(request, *exc_info)
        rendered[f"the HTML report (DEBUG={debug})"] = reporter.get_traceback_html()
        rendered[f"the text report (DEBUG={debug})"] = reporter.get_traceback_text()
    rendered["the frame variables"] = "\n".join(frame_variables(exc_info[1]))
    return rendered


def leaks(text: str, token_values: set[str]) -> list[str]:
    found = [name for name, secret in secret_names(token_values) if secret in text]
    if JWT.search(text):
        found.append("something shaped like a JWT")
    return found


def secret_names(token_values: set[str]) -> Iterator[tuple[str, str]]:
    yield "the client secret", CANARY_SECRET
    yield "the health key", CANARY_KEY
    yield "SECRET_KEY", CANARY_SECRET_KEY
    for value in token_values:
        yield "a token", value


def assert_no_leak(exc_info: ExcInfo | None, settings: Any, stage: str, token_values: set[str] = frozenset()) -> None:
    assert exc_info is not None, f"{stage}: the failure should reach the caller"
    in_play = set(token_values) | health_states.cached_token_values()
    for where, text in reports(exc_info, settings).items():
        assert not leaks(text, in_play), f"{stage}: {leaks(text, in_play)} in {where}"


@pytest.fixture
def memory_error_in_requests(monkeypatch):
    """A MemoryError from inside requests (as a huge gzip answer made): no sandbox fault can do it."""

    def install() -> None:
        def send(*args: Any, **kwargs: Any) -> Any:
            raise MemoryError

        monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)

    return install


# --- the proof of the search ------------------------------------------------------------------


def test_the_search_finds_a_planted_canary(canary, settings):
    def leaky() -> None:
        kept = get_config().client_secret  # what the fixed code must never do
        raise RuntimeError(f"failed after reading {len(kept)} characters")

    exc_info = failure_of(leaky)
    assert exc_info is not None
    for where, text in reports(exc_info, settings).items():
        # Django's text report lists no variables: it is searched at each stage all the same.
        expected = [] if where.startswith("the text report") else ["the client secret"]
        assert leaks(text, set()) == expected, where


# --- each stage ---------------------------------------------------------------------------------


def test_the_token_post_raising_inside_requests(canary, settings, memory_error_in_requests):
    memory_error_in_requests()
    assert_no_leak(failure_of(lambda: get_player_risk_profile("player_1", fresh=True)), settings, "the token POST")


def test_the_token_post_unreachable(canary, settings):
    canary(TOKEN_URL="http://127.0.0.1:9/oauth/token")
    assert_no_leak(failure_of(lambda: get_player_risk_profile("player_1", fresh=True)), settings, "the token POST")


@pytest.mark.parametrize(
    "fault",
    [
        Fault(target="token", kind="non_json"),
        Fault(target="token", kind="bad_type", field="expires_in"),
        Fault(target="token", kind="missing_field", field="access_token"),
        Fault(target="token", kind="status", status=401),
    ],
    ids=["non-json", "bad-expires-in", "no-access-token", "401"],
)
def test_parsing_the_token_answer(canary, sandbox, settings, fault):
    sandbox.state.add_fault(fault)
    assert_no_leak(failure_of(lambda: tokens.get_token()), settings, "parsing the token answer")


@pytest.mark.parametrize(
    "fault",
    [Fault(target="profile", kind="status", status=500), Fault(target="profile", kind="non_json")],
    ids=["500", "non-json"],
)
def test_the_api_call(canary, sandbox, settings, fault):
    canary(MAX_RETRIES=0)
    issued = tokens.get_token().value
    sandbox.state.add_fault(fault)
    assert_no_leak(
        failure_of(lambda: get_player_risk_profile("player_1", fresh=True)), settings, "the API call", {issued}
    )


def test_the_api_call_raising_inside_requests(canary, settings, memory_error_in_requests):
    issued = tokens.get_token().value
    memory_error_in_requests()
    stage = "the API call (MemoryError)"
    assert_no_leak(failure_of(lambda: get_player_risk_profile("player_1", fresh=True)), settings, stage, {issued})


def test_a_settings_error(canary, settings):
    canary(REFRESH_MARGIN="thirty")
    assert_no_leak(failure_of(lambda: get_player_risk_profile("player_1")), settings, "a settings error")
    assert_no_leak(failure_of(get_config), settings, "a settings error (get_config)")


def test_a_sealing_key_list_of_the_wrong_shape(canary, settings):
    """The list holds real key material next to the mistake (the canary secret stands in for it)."""
    canary(TOKEN_ENCRYPTION_KEY=[CANARY_SECRET, 3])
    assert_no_leak(failure_of(get_config), settings, "a sealing key list of the wrong shape")


def test_too_many_fallback_keys(canary, settings):
    settings.SECRET_KEY_FALLBACKS = [f"{CANARY_SECRET}-{n}" for n in range(8)]
    assert_no_leak(failure_of(get_config), settings, "too many SECRET_KEY_FALLBACKS")


@pytest.mark.parametrize(
    ("name", "value"),
    [("count:requests:m{minute}", "not a count"), ("state:beat", {"outcome": "ok"}), ("token", {"not": "sealed"})],
    ids=["counter", "beat-without-at", "token"],
)
def test_a_corrupt_cache_entry_under_the_health_endpoint(canary, settings, name, value):
    """The snapshot contains these failures (a part of it stays empty): the answer itself must not leak."""
    issued = tokens.get_token().value
    config = get_config()
    key = cache_key(config, name.format(minute=int(time.time() // 60)))
    caches[config.cache_alias].set(key, value, 600)
    request = RequestFactory().get("/bettorsense/health/", HTTP_AUTHORIZATION=f"Bearer {CANARY_KEY}")
    exc_info = failure_of(lambda: health(request))
    if exc_info is not None:
        assert_no_leak(exc_info, settings, "a corrupt cache entry", {issued})
        return
    answer = health(request)
    assert answer.status_code in (200, 503) and "status" in answer.content.decode()
    assert not leaks(answer.content.decode() + repr(snapshot.take_snapshot()), {issued})


def test_the_health_snapshot(canary, settings, monkeypatch):
    """A MemoryError while the snapshot decrypts the shared token (no sandbox fault reaches there)."""
    issued = tokens.get_token().value
    tokens.reset_process_state()

    def decrypt(*args: Any, **kwargs: Any) -> bytes:
        raise MemoryError

    monkeypatch.setattr(aead.AESGCM, "decrypt", decrypt)
    assert_no_leak(failure_of(snapshot.take_snapshot), settings, "the health snapshot", {issued})


def test_the_probe(canary, settings, memory_error_in_requests):
    issued = tokens.get_token().value
    memory_error_in_requests()
    exc_info = failure_of(probe.run_probe)
    if exc_info is None:  # the API call turned the MemoryError into a typed error, which the probe reports
        result = probe.run_probe()
        assert not result.ok and result.steps[-1].name == "api"
        assert not leaks(repr(result.to_json()), {issued})
        return
    assert_no_leak(exc_info, settings, "the probe", {issued})
