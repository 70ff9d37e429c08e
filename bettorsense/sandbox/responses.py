"""The response value the endpoint modules return, and the body shapes they share."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

JSON: Final = "application/json; charset=utf-8"
PROBLEM_JSON: Final = "application/problem+json; charset=utf-8"
HTML: Final = "text/html; charset=utf-8"

# The "type" links ASP.NET Core puts in its ProblemDetails.
_PROBLEM_TYPES: Final[dict[int, str]] = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    405: "https://tools.ietf.org/html/rfc9110#section-15.5.6",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc9110#section-15.6.1",
    502: "https://tools.ietf.org/html/rfc9110#section-15.6.3",
    503: "https://tools.ietf.org/html/rfc9110#section-15.6.4",
    504: "https://tools.ietf.org/html/rfc9110#section-15.6.5",
}


@dataclass
class Response:
    """What to send. ``delay`` seconds are waited first; ``hang`` means never answer at all; with
    ``drip``, the body goes one byte every ``drip`` seconds (with ``drip_head``, the head too)."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    hang: bool = False
    drip: float = 0.0
    drip_head: bool = False


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, dumps(payload), JSON, headers or [])


def trace_id() -> str:
    """A W3C trace-context id, as ASP.NET Core puts in ``traceId``."""
    raw = os.urandom(24).hex()
    return f"00-{raw[:32]}-{raw[32:]}-00"


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    **extra: Any,
) -> Response:
    """An RFC 7807 ProblemDetails response shaped like ASP.NET Core's."""
    body = {
        "type": _PROBLEM_TYPES.get(status, "about:blank"),
        "title": title or phrase(status),
        "status": status,
        "detail": detail,
        **extra,
        "traceId": trace_id(),
    }
    return Response(status, dumps(body), PROBLEM_JSON, headers or [])
