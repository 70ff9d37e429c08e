"""OpenTelemetry spans for the token request and the API calls, when ``opentelemetry-api`` is installed.

Each HTTP request (each retry its own) is one CLIENT span named and described per OpenTelemetry's
HTTP-client semantic conventions: name ``{method} {url.template}``, attributes ``http.request.method``,
``server.address``, ``server.port``, ``url.template``, ``url.full``, ``http.response.status_code``,
``error.type`` and, on a retry, ``http.request.resend_count``. An API URL holds the player's account
id, so ``url.full`` is scrubbed as the conventions ask: the scheme and host, then the template in
place of the path, no query. No attribute ever holds an account id or a token. Without the package,
or until the host sets a tracer provider, a span costs a type check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

try:
    from opentelemetry import trace
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

    #: A tuple, not ``A | B``: the union would be built anew on every call.
    _NO_PROVIDER: tuple[type, ...] = (ProxyTracerProvider, NoOpTracerProvider)
    ENABLED = True
except ImportError:  # an optional extra
    ENABLED = False

INSTRUMENTATION = "bettorsense"


@dataclass
class Outcome:
    """What the caller learnt of the request: set inside the ``with`` block, read at its end.

    It is its own context manager: without a tracer provider, :func:`http_client_span` returns a
    bare one, so an untraced call builds neither a generator nor a span.
    """

    status: int | None = None
    error_type: str | None = None

    def __enter__(self) -> Outcome:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@lru_cache(maxsize=32)
def _server(url: str) -> tuple[str, int | None, str, str]:
    """Host, port, path and ``scheme://host[:port]`` of a base URL (the settings' token or API URL)."""
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host  # an IPv6 literal
    origin = f"{parts.scheme}://{shown}" + (f":{parts.port}" if parts.port else "")  # never the userinfo
    return host, port, parts.path.rstrip("/"), origin


@lru_cache(maxsize=1)
def _tracer() -> Any:
    from bettorsense import __version__

    # A proxy until the host sets a tracer provider; it follows the provider set later.
    return trace.get_tracer(INSTRUMENTATION, __version__)


def http_client_span(
    method: str, base_url: str, route: str = "", *, resend_count: int = 0
) -> AbstractContextManager[Outcome]:
    """A span around one HTTP request to ``base_url`` followed by ``route`` (a route template)."""
    # Until the host sets a real provider every span is a no-op: skip building one on the hot path.
    if not ENABLED or isinstance(trace.get_tracer_provider(), _NO_PROVIDER):
        return Outcome()
    return _span(method, base_url, route, resend_count)


@contextmanager
def _span(method: str, base_url: str, route: str, resend_count: int) -> Iterator[Outcome]:
    outcome = Outcome()
    address, port, base_path, origin = _server(base_url)
    template = base_path + route or "/"
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "server.address": address,
        "url.template": template,
        "url.full": origin + template,
    }
    if port is not None:
        attributes["server.port"] = port
    if resend_count:
        attributes["http.request.resend_count"] = resend_count
    with _tracer().start_as_current_span(
        f"{method} {template}",
        kind=trace.SpanKind.CLIENT,
        attributes=attributes,
        # An exception's message is not looked at: error.type (its class) is what is recorded.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield outcome
        except BaseException as err:
            outcome.error_type = outcome.error_type or type(err).__qualname__
            raise
        finally:
            _finish(span, outcome)


def _finish(span: Any, outcome: Outcome) -> None:
    if outcome.status is not None:
        span.set_attribute("http.response.status_code", outcome.status)
    error_type = outcome.error_type
    if error_type is None and outcome.status is not None and outcome.status >= 400:
        error_type = str(outcome.status)
    if error_type is not None:
        span.set_attribute("error.type", error_type)
        span.set_status(trace.Status(trace.StatusCode.ERROR))
