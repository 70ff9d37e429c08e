"""Hostile answers of the token endpoint, over real HTTP: nothing it sends is believed without a bound.

Redirects are never followed, the answer is read with a byte limit after decompression and within
one deadline, ``expires_in``, the token's characters and ``Retry-After`` are bounded, and whatever
fails is a typed :class:`TokenError` that sets the fleet's backoff and leaves no secret in an error
report.
"""

from __future__ import annotations

import email.utils
import math
import sys
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.core.cache import caches

from bettorsense import tokens
from bettorsense.client.http import get_session
from bettorsense.conf import get_config
from bettorsense.exceptions import (
    MalformedTokenResponse,
    TokenBackoff,
    TokenError,
    TokenRateLimited,
    TokenRedirected,
    TokenServerError,
    TokenTimeout,
)
from bettorsense.sandbox import Fault, SandboxServer, SandboxState
from bettorsense.sealing import seal
from bettorsense.tokens.endpoint import TokenEndpoint
from bettorsense.tokens.manager import TokenManager
from tests.support.error_reports import django_reports, frame_variables
from tests.support.sandbox import CLIENT_SECRET, token_requests
from tests.support.threads import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)

HEALTH_KEY = "monitor-key-for-bounds-0123456789"


@pytest.fixture
def elsewhere() -> Iterator[SandboxServer]:
    """Another host: where a redirect points. It must never hear from the client."""
    with SandboxServer(SandboxState()) as server:
        yield server


def request_token_error(call: Any) -> TokenError:
    with pytest.raises(TokenError) as caught:
        call()
    return caught.value


def error_reports(err: BaseException) -> str:
    """Django's technical 500 page and its text form, and the frame variables an error tracker sends."""
    return "\n".join([*django_reports(err, "/players/x/risk-profile/"), *frame_variables(err)])


def assert_no_secret(report: str, *secrets: str) -> None:
    assert CLIENT_SECRET not in report
    for secret in secrets:
        assert secret not in report
        if secret.count(".") == 2:
            assert secret.split(".")[2] not in report  # not even a JWT's signature


# --- redirects ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_and_names_where_it_pointed(configure, sandbox, elsewhere, status):
    target = elsewhere.token_url.replace("http://", "http://user:hunter2@") + "?code=abc#frag"
    sandbox.state.add_fault(Fault(target="token", kind="redirect", status=status, value=target))

    err = request_token_error(tokens.get_access_token)

    assert isinstance(err, TokenRedirected)
    assert err.status_code == status
    assert err.location == elsewhere.token_url  # no user info, no query, no fragment
    assert elsewhere.token_url in str(err)
    assert "hunter2" not in str(err) and "code=abc" not in str(err)
    assert token_requests(sandbox) == 1
    assert elsewhere.state.stats()["token_requests"] == {}  # the other host received nothing
    assert elsewhere.state.stats()["tokens"]["issued"] == 0


def test_a_redirect_leaves_no_secret_in_the_error_reports(configure, sandbox, elsewhere, settings):
    settings.DEBUG = True  # sensitive_variables hides nothing then: no frame may hold a secret at all
    token = tokens.get_access_token()
    sandbox.state.add_fault(Fault(target="token", kind="redirect", status=307, value=elsewhere.token_url))

    err = request_token_error(tokens.force_refresh)

    assert isinstance(err, TokenRedirected)
    report = error_reports(err)
    assert "TokenRedirected" in report and "force_refresh" in report  # the reports were rendered
    assert_no_secret(report, token)


def test_the_report_search_finds_a_planted_canary(configure, sandbox, settings):
    settings.DEBUG = True
    token = tokens.get_access_token()

    def fails_holding_secrets(secret: str, value: str) -> None:
        raise TokenServerError("planted")

    err = request_token_error(lambda: fails_holding_secrets(CLIENT_SECRET, token))
    report = error_reports(err)
    with pytest.raises(AssertionError):
        assert_no_secret(report, token)
    assert CLIENT_SECRET in report.split("fails_holding_secrets", 1)[1]


# --- any failure is typed, chained to nothing, and backs the fleet off ------------------------------


@pytest.fixture
def memory_error_in_requests() -> Iterator[None]:
    """requests fails inside ``Session.post`` with an error that is not a RequestException, as it
    did decoding a gzip bomb: its frames, which hold the form body, are on that error's traceback."""

    def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
        raise MemoryError

    session = get_session()
    session.hooks["response"].append(hook)
    yield
    session.hooks["response"].remove(hook)


def test_an_error_inside_requests_is_typed_and_leaves_requests_frames_out(
    configure, sandbox, settings, memory_error_in_requests
):
    settings.DEBUG = True
    configure(BACKOFF_BASE=30.0)  # a backoff that outlasts the rendering of the reports below

    err = request_token_error(tokens.get_access_token)

    assert isinstance(err, MalformedTokenResponse)
    assert "MemoryError" in str(err)
    assert err.__cause__ is None and err.__context__ is None
    assert token_requests(sandbox) == 1  # the request was made; reading it failed
    assert tokens.get_token_manager().shared.read_backoff() is not None
    report = error_reports(err)
    assert "MalformedTokenResponse" in report
    assert "requests/sessions.py" not in report
    assert_no_secret(report)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault(target="token", kind="gzip_bomb"), id="gzip-bomb"),
        pytest.param(Fault(target="token", kind="json_bomb"), id="json-bomb"),
    ],
)
def test_a_bomb_leaves_no_secret_in_the_error_reports(configure, sandbox, settings, fault):
    settings.DEBUG = True
    token = tokens.get_access_token()
    sandbox.state.add_fault(fault)

    err = request_token_error(tokens.force_refresh)

    assert isinstance(err, MalformedTokenResponse)
    assert err.__context__ is None
    report = error_reports(err)
    assert "MalformedTokenResponse" in report
    assert_no_secret(report, token)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(Fault(target="token", kind="json_bomb"), MalformedTokenResponse, id="json-bomb"),
        pytest.param(Fault(target="token", kind="status", status=500), TokenServerError, id="500"),
    ],
)
def test_fifty_callers_facing_a_failure_make_one_token_request(configure, sandbox, fault, expected):
    configure(BACKOFF_BASE=30.0, BACKOFF_MAX=60.0)
    sandbox.state.add_fault(fault)
    config = get_config()
    managers = [TokenManager(config) for _ in range(5)]  # five "processes", ten threads each
    calls = iter(range(50))

    def call() -> Any:
        return managers[next(calls) % 5].get_token()

    results = run_in_threads(call, 50)

    assert token_requests(sandbox) == 1
    assert all(isinstance(result, TokenError) for result in results), results
    assert sum(isinstance(result, expected) for result in results) == 1
    assert sum(isinstance(result, TokenBackoff) for result in results) == 49


def test_a_gzip_bomb_is_refused_past_the_limit_with_little_memory(configure, sandbox):
    endpoint = TokenEndpoint(get_config())
    sandbox.state.add_fault(Fault(target="token", kind="gzip_bomb", value=1_500_000))  # ~1.5 GB inflated

    tracemalloc.start()
    try:
        err = request_token_error(endpoint.request_token)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert isinstance(err, MalformedTokenResponse)
    assert "TOKEN_MAX_BYTES" in str(err)
    # tracemalloc also counts the in-process sandbox building and sending its 1.5 MB body; inflating
    # the answer instead of stopping at the limit would cost about 1.5 GB.
    assert peak < 32 * 1024 * 1024


def test_the_byte_limit_is_a_setting(configure, sandbox):
    configure(TOKEN_MAX_BYTES=256)
    err = request_token_error(TokenEndpoint(get_config()).request_token)  # a sandbox answer is ~400 bytes
    assert isinstance(err, MalformedTokenResponse) and "256 bytes" in str(err)
    configure(TOKEN_MAX_BYTES=16_384)
    assert TokenEndpoint(get_config()).request_token().value


# --- what the answer says -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expires_in", [1e20, math.inf, -math.inf, math.nan, 10**30, 86401, 0.5, 0, -600, "600", None, True]
)
def test_expires_in_must_be_between_a_second_and_a_day(configure, sandbox, expires_in):
    if expires_in is None:
        fault = Fault(target="token", kind="missing_field", field="expires_in")
    else:
        fault = Fault(target="token", kind="bad_type", field="expires_in", value=expires_in)
    sandbox.state.add_fault(fault)

    err = request_token_error(TokenEndpoint(get_config()).request_token)

    assert isinstance(err, MalformedTokenResponse)
    assert "expires_in" in str(err)


@pytest.mark.parametrize("expires_in", [1, 86400, 300.5])
def test_expires_in_at_the_bounds_is_accepted(configure, sandbox, expires_in):
    sandbox.state.add_fault(Fault(target="token", kind="bad_type", field="expires_in", value=expires_in))
    token = TokenEndpoint(get_config()).request_token()
    assert 0 < token.lifetime <= expires_in


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("tök€n-value", id="non-latin-1"),
        pytest.param("caf\u00e9-latin-1", id="latin-1"),
        pytest.param("two words", id="space"),
        pytest.param("line\r\nX-Injected: 1", id="header-injection"),
        pytest.param("ab=cd", id="padding-inside"),
        pytest.param("=abcd", id="padding-only"),
        pytest.param("a" * 4097, id="longer-than-TOKEN_MAX_LENGTH"),
    ],
)
def test_the_token_must_be_a_b64token_of_bounded_length(configure, sandbox, value):
    sandbox.state.add_fault(Fault(target="token", kind="bad_type", field="access_token", value=value))

    err = request_token_error(TokenEndpoint(get_config()).request_token)

    assert isinstance(err, MalformedTokenResponse)
    assert "access_token" in str(err)
    assert value not in str(err)


def test_a_megabyte_token_is_refused_and_never_cached(configure, sandbox):
    sandbox.state.add_fault(Fault(target="token", kind="bad_type", field="access_token", value="a" * 1_000_000))
    err = request_token_error(tokens.get_access_token)
    assert isinstance(err, MalformedTokenResponse)
    assert tokens.get_token_manager().peek() is None


def test_every_b64token_character_is_accepted(configure, sandbox):
    value = "AZaz09-._~+/" + "x" * 4082 + "=="  # TOKEN_MAX_LENGTH exactly
    sandbox.state.add_fault(Fault(target="token", kind="bad_type", field="access_token", value=value))
    assert TokenEndpoint(get_config()).request_token().value == value


def test_the_token_length_is_a_setting(configure, sandbox):
    configure(TOKEN_MAX_LENGTH=64)  # a sandbox JWT is longer
    err = request_token_error(TokenEndpoint(get_config()).request_token)
    assert isinstance(err, MalformedTokenResponse) and "TOKEN_MAX_LENGTH (64)" in str(err)


# --- Retry-After and the fleet's backoff ----------------------------------------------------------

FAR_FUTURE = "Fri, 31 Dec 9999 23:59:59 GMT"


@pytest.mark.parametrize(
    ("retry_after", "believed"),
    [
        pytest.param(10**12, 5.0, id="1e12-seconds"),
        pytest.param("1e12", 5.0, id="1e12-text"),
        pytest.param(FAR_FUTURE, 5.0, id="http-date-in-9999"),
        pytest.param("Infinity", None, id="infinity"),  # no number of seconds: the fleet's own backoff
        pytest.param("1e400", None, id="overflows-to-infinity"),
    ],
)
def test_a_huge_retry_after_backs_off_at_most_backoff_max(client, configure, sandbox, retry_after, believed):
    configure(BACKOFF_MAX=5.0, BACKOFF_BASE=4.0, HEALTH_TOKEN=HEALTH_KEY)  # a backoff that lasts past the reads
    if isinstance(retry_after, int):
        fault = Fault(target="token", kind="retry_after", retry_after=retry_after, times=1)
    else:
        fault = Fault(target="token", kind="retry_after", value=retry_after, times=1)
    sandbox.state.add_fault(fault)

    err = request_token_error(tokens.get_access_token)

    assert isinstance(err, TokenRateLimited)
    assert err.retry_after == believed
    backoff = TokenManager(get_config()).shared.read_backoff()
    assert backoff is not None and backoff.until <= time.time() + 5.0
    response = client.get("/bettorsense/health/", HTTP_AUTHORIZATION=f"Bearer {HEALTH_KEY}")
    until = response.json()["token"]["backoff_until"]
    assert until is not None and email.utils.parsedate_to_datetime(_http_date(until)).year < 9999


def _http_date(iso: str) -> str:
    from datetime import datetime

    return email.utils.format_datetime(datetime.fromisoformat(iso.replace("Z", "+00:00")))


@pytest.mark.parametrize("retry_after", ["NaN", "soon", "-5", ""])
def test_a_retry_after_that_means_nothing_is_ignored(configure, sandbox, retry_after):
    sandbox.state.add_fault(Fault(target="token", kind="retry_after", value=retry_after or " ", times=1))
    err = request_token_error(TokenEndpoint(get_config()).request_token)
    assert isinstance(err, TokenRateLimited)
    assert err.retry_after in (None, 0.0)


def test_an_http_date_retry_after_is_parsed(configure, sandbox):
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    sandbox.state.add_fault(Fault(target="token", kind="retry_after", value=in_a_minute, times=1))
    err = request_token_error(TokenEndpoint(get_config()).request_token)
    assert isinstance(err, TokenRateLimited)
    assert err.retry_after is not None and 50 < err.retry_after <= 60


def test_the_fleet_recovers_within_backoff_max_of_a_retry_after_in_9999(configure, sandbox, clock):
    configure(BACKOFF_MAX=5.0)
    sandbox.state.add_fault(Fault(target="token", kind="retry_after", value=FAR_FUTURE, times=1))
    manager = TokenManager(get_config(), clock=clock)

    assert isinstance(request_token_error(manager.get_token), TokenRateLimited)
    with pytest.raises(TokenBackoff):
        manager.get_token()
    clock.advance(5.01)

    assert manager.get_token().value  # the endpoint healed; the fleet asked again
    assert token_requests(sandbox) == 2


@pytest.mark.parametrize(
    ("entry", "capped"),
    [
        pytest.param({"until": 1e300, "error": "TokenRateLimited", "message": "m"}, True, id="far-future"),
        pytest.param({"until": 10**400, "error": "TokenRateLimited", "message": "m"}, False, id="huge-int"),
        pytest.param({"until": 1e300}, False, id="no-error"),
    ],
)
def test_a_sealed_backoff_entry_is_capped_at_backoff_max(configure, sandbox, clock, entry, capped):
    """Sealed, as this app writes it, but from a host whose clock or BACKOFF_MAX differs."""
    configure(BACKOFF_MAX=5.0)
    manager = TokenManager(get_config(), clock=clock)
    key = manager.shared.backoff_key
    caches[get_config().cache_alias].set(key, seal(get_config(), entry, key=key, kind="backoff"), 3600)

    backoff = manager.shared.read_backoff()

    if not capped:  # out of range or incomplete: malformed, so no backoff, and removed
        assert backoff is None
        assert caches[get_config().cache_alias].get(key) is None
        return
    assert backoff is not None and backoff.until == clock.now() + 5.0
    with pytest.raises(TokenBackoff) as caught:
        manager.get_token()
    assert caught.value.retry_after == 5.0


@pytest.mark.parametrize(
    "entry",
    [
        {"until": "soon"},
        {"until": math.nan},
        {"until": math.inf, "error": "TokenRateLimited", "message": "m"},
        ["until", 1e300],
        "garbage",
    ],
)
def test_an_unsealed_backoff_entry_is_no_backoff_and_removed(configure, sandbox, entry):
    manager = TokenManager(get_config())
    caches[get_config().cache_alias].set(manager.shared.backoff_key, entry, 3600)
    assert manager.shared.read_backoff() is None
    assert caches[get_config().cache_alias].get(manager.shared.backoff_key) is None
    assert manager.get_token().value


# --- one deadline -------------------------------------------------------------------------------


def test_a_dripping_body_cannot_hold_the_caller_past_the_deadline(configure, sandbox):
    configure(CONNECT_TIMEOUT=0.5, READ_TIMEOUT=1.5, BACKOFF_BASE=30.0)  # each byte comes within READ_TIMEOUT
    deadline = 0.5 + 1.5
    sandbox.state.add_fault(Fault(target="token", kind="drip", delay=1.0))
    started = time.monotonic()

    err = request_token_error(tokens.get_access_token)

    assert isinstance(err, TokenTimeout)
    assert "CONNECT_TIMEOUT + READ_TIMEOUT" in str(err)
    assert token_requests(sandbox) == 1
    assert time.monotonic() - started < 3 * deadline  # a guard against hanging, not a timing claim
    assert tokens.get_token_manager().shared.read_backoff() is not None


def test_a_quick_drip_still_delivers_the_token(configure, sandbox):
    sandbox.state.add_fault(Fault(target="token", kind="drip", delay=0.001, times=1))
    assert TokenEndpoint(get_config()).request_token().value.count(".") == 2


def test_the_connection_of_a_refused_answer_is_not_reused(configure, sandbox):
    """A refused answer may leave bytes unread on its connection, or a shortened socket timeout."""
    sandbox.state.add_fault(Fault(target="token", kind="gzip_bomb", times=1))
    endpoint = TokenEndpoint(get_config())
    assert isinstance(request_token_error(endpoint.request_token), MalformedTokenResponse)
    assert endpoint.request_token().value
    assert token_requests(sandbox) == 2


def test_the_system_exit_of_a_worker_is_not_swallowed(configure, sandbox):
    """Any Exception becomes a TokenError; a BaseException (a worker told to stop) passes through."""

    def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
        raise SystemExit(3)

    session = get_session()
    session.hooks["response"].append(hook)
    try:
        with pytest.raises(SystemExit):
            TokenEndpoint(get_config()).request_token()
    finally:
        session.hooks["response"].remove(hook)
    assert sys.exc_info() == (None, None, None)
