"""The lean call path: each piece of per-call work moved out of the call still behaves as before.

``get_player_risk_profile(fresh=True)`` prepares its request by hand, sends it through the session's
adapter without ``Session.send``'s redirect machinery, skips urllib3's last empty read, encodes most
path segments without ``quote`` (a resource's fixed segments once per process), reads the breaker
and writes telemetry at most once a second, and builds no span without a tracer provider. These
tests pin what each shortcut must keep: the session's headers, hooks, cookies and mounted adapters,
every byte of a body, the exact encoding, the fleet's breaker within its recheck bound, and settings
changed through ``setting_changed``.
"""

from __future__ import annotations

import gzip
import io
import time
import unicodedata
from typing import Any
from urllib.parse import quote

import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from bettorsense import telemetry, tokens, tracing
from bettorsense.cache import cache_key
from bettorsense.client import api, breaker
from bettorsense.client.breaker import CircuitBreaker
from bettorsense.client.http import get_session, read_body
from bettorsense.client.routes import route_template
from bettorsense.client.validation import account_id, path_segment
from bettorsense.conf import get_config
from bettorsense.exceptions import InvalidInput, PlayerNotFound, ServiceUnavailable
from bettorsense.services import get_player_risk_profile
from tests.support.sandbox import FakeClock

pytestmark = pytest.mark.django_db(transaction=True)

URL = "http://127.0.0.1:9/ci/api/rg/v1/Operator/PlayerRiskProfile/bookmakers/1/sub-bookmakers/2/accountid/p"


def a_token() -> tokens.AccessToken:
    now = time.time()
    return tokens.AccessToken(value="abc.def-ghi", token_type="Bearer", issued_at=now, expires_at=now + 600)


# --- the request, prepared by hand ---------------------------------------------------------------


def test_the_prepared_request_carries_the_sessions_headers_hooks_and_cookies():
    session = requests.Session()
    session.headers["X-Host-Header"] = "kept"

    def hook(response: Any, **kwargs: Any) -> Any:
        return response

    session.hooks["response"].append(hook)
    session.cookies.set("AWSALB", "affinity", domain="127.0.0.1", path="/")
    prepared = api._prepare(session, URL, a_token())
    assert prepared.method == "GET"
    assert prepared.url == URL
    assert prepared.headers["Authorization"] == "Bearer abc.def-ghi"
    assert prepared.headers["X-Host-Header"] == "kept"
    assert prepared.headers["User-Agent"] == session.headers["User-Agent"]
    assert prepared.headers["Cookie"] == "AWSALB=affinity"
    assert prepared.hooks["response"] == [hook]
    assert prepared.body is None
    assert "X-Host-Header" not in get_session().headers  # a copy: the session itself is not changed


def test_no_cookie_header_without_cookies():
    prepared = api._prepare(requests.Session(), URL, a_token())
    assert "Cookie" not in prepared.headers


def test_a_dots_only_segment_stays_encoded_on_the_wire():
    """The URL is sent as built: preparing it would turn %2E%2E back into a ".." that collapses the path."""
    url = api.build_url(get_config(), ("v1", "accountid"), account_id="..")
    assert url.endswith("/v1/accountid/%2E%2E")
    assert api._prepare(requests.Session(), url, a_token()).url == url


def test_a_resources_fixed_segments_are_built_once_and_the_account_id_on_every_call():
    config = get_config()
    fixed = ("v1", "Operator", "PlayerRiskProfile", "bookmakers", "1", "sub-bookmakers", "2", "accountid")
    base = config.api_url + "/v1/Operator/PlayerRiskProfile/bookmakers/1/sub-bookmakers/2/accountid/"
    api._resource.cache_clear()
    assert api.build_url(config, fixed, account_id="a/b?c") == base + "a%2Fb%3Fc"
    assert api.build_url(config, fixed, account_id="player_7") == base + "player_7"
    assert api._resource.cache_info().misses == 1  # the fixed part once; the account ids are never a key
    route = api._resource(config.api_url, fixed, True)[1]
    assert (
        route
        == route_template((*fixed, "player_7"))
        == (
            "/v1/Operator/PlayerRiskProfile/bookmakers/{bookmakerId}/sub-bookmakers/{subBookmakerId}/accountid/{accountId}"
        )
    )
    batch = ("v1", "Operator", "RiskProfiles", "bookmakers", "1", "sub-bookmakers", "2")
    assert api.build_url(config, batch, {"page": 2, "skip": None}) == config.api_url + (
        "/v1/Operator/RiskProfiles/bookmakers/1/sub-bookmakers/2?page=2"
    )


def test_a_netrc_entry_for_the_api_host_does_not_replace_the_bearer_token(configure, sandbox, tmp_path, monkeypatch):
    # Session.prepare_request would read it and send Basic credentials instead of the token.
    get_player_risk_profile("player_1", fresh=True)  # the token first: only the API call meets the netrc
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password something\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert requests.utils.get_netrc_auth(sandbox.api_url("integration")) == ("someone", "something")
    assert get_player_risk_profile("player_1", fresh=True).account_id == "player_1"


class CookieSettingAdapter(HTTPAdapter):
    """A host's own transport: records the Cookie each request carries, and sets one on the first answer."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.cookies_sent: list[str | None] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.cookies_sent.append(request.headers.get("Cookie"))
        return super().send(request, *args, **kwargs)

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        if len(self.cookies_sent) == 1:
            resp._original_response.msg["Set-Cookie"] = "AWSALB=affinity-1; Path=/"
        return super().build_response(req, resp)


def test_a_host_mounted_adapter_carries_the_call_and_the_cookie_it_sets_goes_back(configure, sandbox):
    configure()
    session = get_session()
    adapter = CookieSettingAdapter()
    prefix = sandbox.api_url("integration") + "/"
    session.mount(prefix, adapter)
    try:
        first = get_player_risk_profile("player_1", fresh=True)
        second = get_player_risk_profile("player_1", fresh=True)
    finally:
        del session.adapters[prefix]
        session.cookies.clear()
    assert first.account_id == second.account_id == "player_1"
    assert adapter.cookies_sent == [None, "AWSALB=affinity-1"]


def test_a_response_hook_on_the_session_runs_and_may_replace_the_answer(configure, sandbox):
    configure()
    session = get_session()
    seen: list[tuple[int, bool, Any]] = []

    def hook(response: requests.Response, **kwargs: Any) -> requests.Response | None:
        if "/PlayerRiskProfile/" not in response.url:
            return None  # the token endpoint's answer
        seen.append((response.status_code, kwargs["stream"], kwargs["timeout"]))
        if len(seen) == 1:
            return None  # kept as it is
        response.status_code = 404  # replaced: a falsy Response is a replacement all the same
        return response

    session.hooks["response"].append(hook)
    try:
        assert get_player_risk_profile("player_1", fresh=True).account_id == "player_1"
        with pytest.raises(PlayerNotFound):
            get_player_risk_profile("player_1", fresh=True)
    finally:
        session.hooks["response"].remove(hook)
    config = get_config()
    assert seen == [(200, True, (config.connect_timeout, config.read_timeout))] * 2


# --- the body, read without the last empty read ----------------------------------------------------


class FakeRaw:
    """urllib3's response as read_body sees it: pieces, then closed once the last one is out."""

    def __init__(self, pieces: list[bytes], *, closes_with_last: bool) -> None:
        self.pieces = list(pieces)
        self.closes_with_last = closes_with_last
        self.reads = 0

    @property
    def closed(self) -> bool:
        return not self.pieces and self.closes_with_last

    def read1(self, amount: int, decode_content: bool) -> bytes:
        self.reads += 1
        return self.pieces.pop(0) if self.pieces else b""


class FakeResponse:
    def __init__(self, raw: FakeRaw, headers: dict[str, str]) -> None:
        self.raw = raw
        self.headers = headers


def read(raw: FakeRaw, headers: dict[str, str]) -> bytes:
    response: Any = FakeResponse(raw, headers)
    return read_body(response, max_bytes=1 << 20, deadline=time.monotonic() + 10, read_timeout=5)


def test_a_body_delivered_whole_is_read_without_another_read():
    raw = FakeRaw([b'{"a":', b"1}"], closes_with_last=True)
    assert read(raw, {"Content-Length": "7"}) == b'{"a":1}'
    assert raw.reads == 2


def test_a_body_still_open_is_read_to_its_end():
    raw = FakeRaw([b'{"a":', b"1}"], closes_with_last=False)  # chunked, or delimited by the close
    assert read(raw, {}) == b'{"a":1}'
    assert raw.reads == 3


def test_an_encoded_body_is_read_until_urllib3_flushes_its_decoder():
    raw = FakeRaw([b"[1,", b"2]"], closes_with_last=True)
    assert read(raw, {"Content-Encoding": "gzip"}) == b"[1,2]"
    assert raw.reads == 3


def test_a_gzip_body_is_read_whole_through_urllib3():
    inflated = b'{"playerId": "x", "pad": "' + b"0" * 200_000 + b'"}'
    raw = urllib3.HTTPResponse(
        body=io.BytesIO(gzip.compress(inflated)), headers={"Content-Encoding": "gzip"}, preload_content=False
    )
    response = requests.Response()
    response.raw, response.headers = raw, requests.structures.CaseInsensitiveDict(raw.headers)
    assert read_body(response, max_bytes=1 << 20, deadline=time.monotonic() + 10, read_timeout=5) == inflated


# --- the JSON and the encodings, as before -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1}',
        '{"a": "é"}'.encode("utf-16"),
        '{"a": "é"}'.encode("utf-32-le"),
        b'\xef\xbb\xbf{"a": 1}',
        b"NaN",
        b'{"a": Infinity}',
        b"[" * 100_000,
        b"\xff\xfe\x00",
        b"",
    ],
)
def test_json_is_parsed_as_json_loads_parsed_it(body):
    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        expected: Any = __import__("json").loads(body, parse_constant=refuse)
    except (ValueError, RecursionError):
        expected = None
    parsed = api._parse_json(body)
    assert (None if isinstance(parsed, Exception) else parsed) == expected


def test_path_segments_are_encoded_as_quote_encodes_them():
    samples = ["", ".", "..", "...", ".a", "a.", "player_1", "a/b", "%2E", "~x", "a b", "?", "#", "-_.~"]
    samples += [chr(code) for code in range(0x3000)] + [f"ab{chr(code)}." for code in range(0x3000)]
    for value in samples:
        encoded = quote(value, safe="")
        expected = "%2E" * len(encoded) if encoded and set(encoded) == {"."} else encoded
        assert path_segment(value) == expected, value


def test_account_ids_with_control_characters_are_refused_as_before():
    for code in [*range(0x10000), 0x10000, 0x1F600, 0xE0001, 0x10FFFF]:
        char = chr(code)
        control = unicodedata.category(char) in ("Cc", "Cs")
        if control:
            with pytest.raises(InvalidInput):
                account_id(f"a{char}b")
        else:
            assert account_id(f"a{char}b") == f"a{char}b"


# --- the breaker: a process memo, re-read within its bound -------------------------------------------


def test_a_breaker_opened_by_another_process_is_seen_within_its_recheck(configure):
    configure(BREAKER_THRESHOLD=1, BREAKER_COOLDOWN=30)
    config = get_config()
    clock = FakeClock(time.time())
    here, there = CircuitBreaker(config, clock=clock), CircuitBreaker(config, clock=clock)
    here.before_call()  # reads the fleet's state: closed, remembered for _RECHECK
    there.before_call()
    there.record_failure()  # another process opens the breaker for the fleet
    clock.advance(breaker._RECHECK / 2)
    here.before_call()  # still on its memo
    clock.advance(breaker._RECHECK / 2)
    with pytest.raises(ServiceUnavailable, match="circuit breaker is open"):
        here.before_call()


def test_a_closed_breaker_reads_the_cache_once_per_recheck(configure, monkeypatch):
    configure()
    clock = FakeClock(time.time())
    here = CircuitBreaker(get_config(), clock=clock)
    reads: list[list[str]] = []
    real = breaker._shared.get_many

    def counted(config: Any, keys: Any) -> dict[str, Any]:
        reads.append(list(keys))
        return real(config, keys)

    monkeypatch.setattr(breaker._shared, "get_many", counted)
    for _ in range(100):
        here.before_call()
        here.record_success()
        clock.advance(breaker._RECHECK / 200)
    assert len(reads) == 1
    clock.advance(breaker._RECHECK)
    here.before_call()
    assert len(reads) == 2


# --- telemetry and tracing ------------------------------------------------------------------------


def test_the_last_api_call_is_written_once_a_second_and_at_once_on_a_flip(configure, monkeypatch):
    configure()
    config = get_config()
    clock = FakeClock(1000.0)
    telemetry.api_call_throttle(config).clock = clock
    writes: list[str] = []
    monkeypatch.setattr(telemetry, "_record", lambda config, name, value, ttl: writes.append(value["outcome"]))
    for _ in range(50):
        telemetry.record_api_call(config, None, 0.01)
    assert writes == ["ok"]
    telemetry.record_api_call(config, ServiceUnavailable("down"), 0.01)  # answered -> failing: at once
    assert writes == ["ok", "ServiceUnavailable"]
    clock.advance(1.0)
    telemetry.record_api_call(config, ServiceUnavailable("down"), 0.01)
    assert writes == ["ok", "ServiceUnavailable", "ServiceUnavailable"]


@pytest.mark.parametrize("installed", [False, True], ids=["without-opentelemetry", "without-a-provider"])
def test_without_a_tracer_provider_a_span_is_a_bare_outcome(monkeypatch, installed):
    monkeypatch.setattr(tracing, "ENABLED", installed)
    if installed:  # the global provider as OpenTelemetry starts: tests/test_tracing.py may have set one here
        monkeypatch.setattr(tracing.trace, "get_tracer_provider", tracing.ProxyTracerProvider)
    span = tracing.http_client_span("GET", "http://127.0.0.1:9/api", "/v1")
    assert isinstance(span, tracing.Outcome)
    with span as outcome:
        outcome.status = 200
    assert outcome.status == 200


def test_an_exception_passes_through_a_bare_span(monkeypatch):
    monkeypatch.setattr(tracing, "ENABLED", False)
    with pytest.raises(KeyError), tracing.http_client_span("GET", "http://127.0.0.1:9/api"):
        raise KeyError("x")


# --- settings changed through setting_changed ------------------------------------------------------


def test_a_changed_client_id_changes_every_cache_key(configure):
    configure()
    before = get_config()
    key = cache_key(before, "token")
    configure(CLIENT_ID="another-client")
    after = get_config()
    assert after is not before
    assert after.credentials_identity != before.credentials_identity
    assert cache_key(after, "token") != key
    assert cache_key(before, "token") == key  # each Config keeps its own


def test_a_changed_api_url_is_called(configure, sandbox):
    configure(API_URL="http://127.0.0.1:9/nothing-listens", MAX_RETRIES=0, BREAKER_THRESHOLD=100)
    with pytest.raises(ServiceUnavailable):
        get_player_risk_profile("player_1", fresh=True)
    configure()
    assert get_player_risk_profile("player_1", fresh=True).account_id == "player_1"
