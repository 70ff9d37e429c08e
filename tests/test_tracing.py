"""OpenTelemetry spans of the token request and the API calls, read from the SDK's in-memory exporter.

The calls go to the sandbox over real HTTP. Names and attributes follow OpenTelemetry's HTTP-client
semantic conventions; no attribute may hold an account id or a token (``url.full`` is scrubbed).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bettorsense import tokens
from bettorsense.exceptions import ProfileNotCreated, TokenError
from bettorsense.sandbox.faults import Fault
from bettorsense.services import get_player_risk_profile

pytestmark = pytest.mark.django_db

ROUTE = "/v1/Operator/PlayerRiskProfile/bookmakers/{bookmakerId}/sub-bookmakers/{subBookmakerId}/accountid/{accountId}"


class GatedProcessor(SimpleSpanProcessor):
    """Exports only while a test of this module runs: the global provider outlives the module."""

    active = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            super().on_end(span)


_exporter = InMemorySpanExporter()
_gate = GatedProcessor(_exporter)
_installed = False


def _install() -> None:
    """The SDK provider, set on first use (OpenTelemetry refuses to replace a global provider)."""
    global _installed
    if _installed:
        return
    current = trace.get_tracer_provider()
    provider = current if isinstance(current, TracerProvider) else TracerProvider()
    if provider is not current:
        trace.set_tracer_provider(provider)
    provider.add_span_processor(_gate)
    _installed = True


@pytest.fixture
def spans(configure) -> Iterator[InMemorySpanExporter]:
    _install()
    _exporter.clear()
    _gate.active = True
    yield _exporter
    _gate.active = False
    _exporter.clear()


def ours(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.instrumentation_scope.name == "bettorsense"]


def assert_clean(span: ReadableSpan, *secrets: str) -> None:
    for key, value in (span.attributes or {}).items():
        for secret in secrets:
            assert secret not in str(value), (key, value)
    for secret in secrets:
        assert secret not in span.name


def test_a_call_is_a_token_span_and_an_api_span(spans, sandbox):
    get_player_risk_profile("player_1", fresh=True)
    token_span, api_span = ours(spans)
    token_url, api_url = urlsplit(sandbox.token_url), urlsplit(sandbox.api_url("integration"))

    assert token_span.kind is trace.SpanKind.CLIENT and token_span.name == f"POST {token_url.path}"
    assert dict(token_span.attributes) == {
        "http.request.method": "POST",
        "server.address": token_url.hostname,
        "server.port": token_url.port,
        "url.template": token_url.path,
        "url.full": sandbox.token_url,
        "http.response.status_code": 200,
    }
    template = api_url.path + ROUTE
    assert api_span.kind is trace.SpanKind.CLIENT and api_span.name == f"GET {template}"
    assert dict(api_span.attributes) == {
        "http.request.method": "GET",
        "server.address": api_url.hostname,
        "server.port": api_url.port,
        "url.template": template,
        "url.full": f"{api_url.scheme}://{api_url.netloc}{template}",
        "http.response.status_code": 200,
    }
    assert api_span.status.status_code is trace.StatusCode.UNSET
    token = tokens.get_token_manager().peek()
    assert token is not None
    for span in (token_span, api_span):
        assert_clean(span, "player_1", token.value)


def test_an_error_answer_sets_error_type_to_its_status(spans, sandbox):
    with pytest.raises(ProfileNotCreated):
        get_player_risk_profile("player_97", fresh=True)
    api_span = ours(spans)[-1]
    assert api_span.attributes["http.response.status_code"] == 404
    assert api_span.attributes["error.type"] == "404"
    assert api_span.status.status_code is trace.StatusCode.ERROR
    assert_clean(api_span, "player_97")


def test_each_retry_is_a_span_of_its_own_with_its_resend_count(spans, sandbox, configure):
    configure(RETRY_BACKOFF=0.01)
    sandbox.state.add_fault(Fault(target="api", kind="status", status=503, times=1))
    get_player_risk_profile("player_2", fresh=True)
    first, second = [span for span in ours(spans) if span.name.startswith("GET ")]
    assert first.attributes["error.type"] == "503" and "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["http.response.status_code"] == 200 and "error.type" not in second.attributes


def test_a_failed_token_request_names_its_error(spans, sandbox):
    sandbox.state.add_fault(Fault(target="token", kind="status", status=500))
    with pytest.raises(TokenError) as raised:
        get_player_risk_profile("player_3", fresh=True)
    token_span = next(span for span in ours(spans) if span.name.startswith("POST "))
    assert token_span.attributes["http.response.status_code"] == 500
    assert token_span.attributes["error.type"] == type(raised.value).__name__
    assert token_span.status.status_code is trace.StatusCode.ERROR
    assert_clean(token_span, "player_3")
