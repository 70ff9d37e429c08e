"""Injected failures: what a :class:`Fault` is, and how it bends a response body.

Targets: ``token`` (``POST /oauth/token``), ``profile`` (single-player route), ``batch``
(all-players route), ``api`` (both API routes). Kinds:

* before the request is handled: ``status`` (answer ``status``), ``retry_after`` (429 with
  ``Retry-After: retry_after``), ``slow`` (wait ``delay`` s, then answer normally), ``hang`` (never
  answer; the connection stays open until the server stops);
* on a response that would have been a 200: ``non_json`` (200 with an HTML page),
  ``missing_field`` (drop ``field``), ``bad_type`` (set ``field`` to ``value``, or to a value of the
  wrong type). Defaults for ``field``: ``access_token`` / ``expires_in`` for the token endpoint,
  ``playerId`` / ``riskScore`` for profiles (every item of a batch page, or an envelope key such
  as ``items`` or ``totalPages`` when named).

Hostile answers of the token endpoint (target ``token`` only):

* ``redirect``: answer ``status`` (a 3xx) with ``Location: value``;
* ``retry_after`` with a ``value``: that text as the ``Retry-After`` header (``"Infinity"``, an HTTP
  date), instead of the whole seconds of ``retry_after``;
* ``gzip_bomb``: a 200 whose gzip body of ``value`` bytes (default 1.5 MB) decompresses to ~1000 times that;
* ``json_bomb``: a 200 whose JSON nests ``value`` arrays deep (default 5000);
* ``drip``: the normal answer, its body sent one byte every ``delay`` seconds;
* ``drip_head``: the normal answer, its status line and headers (then the body) sent one byte
  every ``delay`` seconds.

``times`` counts down each time the fault fires and the fault is removed at 0 (None = forever);
``page`` restricts a fault to that page of the batch route; ``client_id`` (target ``token`` only)
restricts it to the token requests of that client.

Hostile API answers (targets ``api``, ``profile``, ``batch``):

* ``drip``: the normal answer, its body sent one byte every ``delay`` s;
* ``gzip_bomb``: a 200 whose gzip body of ``value`` bytes (default 306 kB) inflates to ~1000 times that;
* ``json_bomb``: a 200 whose JSON nests ``value`` arrays deep (default 5000);
* ``echo_token``: answer ``status`` with a ProblemDetails whose detail echoes the bearer token;
* ``retry_after`` also takes ``value``: a string sent verbatim as ``Retry-After`` (an HTTP date);
* batch only: ``endless_pages`` (every page full of ids never sent before, no page count),
  ``alternating_pages`` (odd pages answer page 1, even pages page 2), ``oversized_page`` (one page
  of ``value`` items, default 200,000, whatever the page size).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

TARGETS: Final = frozenset({"token", "api", "profile", "batch"})
# --- hostile API answers (client/api.py's bounds) ---
API_HOSTILE_KINDS: Final = frozenset(
    {"drip", "gzip_bomb", "json_bomb", "echo_token", "endless_pages", "alternating_pages", "oversized_page"}
)
# --- end of hostile API answers ---
BEFORE_KINDS: Final = frozenset({"status", "retry_after", "slow", "hang"}) | API_HOSTILE_KINDS
BODY_KINDS: Final = frozenset({"non_json", "missing_field", "bad_type"})
# --- token endpoint: hostile answers ---
TOKEN_KINDS: Final = frozenset({"redirect", "gzip_bomb", "json_bomb", "drip", "drip_head"})
# --- end token endpoint ---
KINDS: Final = BEFORE_KINDS | BODY_KINDS | TOKEN_KINDS
ENVELOPE_KEYS: Final = frozenset({"items", "results", "page", "pageSize", "totalPages", "totalCount"})

HTML_PAGE: Final = (
    b"<!DOCTYPE html>\n<html><head><title>Service maintenance</title></head>\n"
    b"<body><h1>We'll be back soon</h1><p>The service is undergoing maintenance.</p></body></html>\n"
)

_DEFAULT_FIELDS: Final = {
    ("token", "missing_field"): "access_token",
    ("token", "bad_type"): "expires_in",
    ("api", "missing_field"): "playerId",
    ("api", "bad_type"): "riskScore",
}
_TOKEN_BAD_VALUES: Final[dict[str, Any]] = {"expires_in": "abc", "token_type": 5, "access_token": 12345}


@dataclasses.dataclass
class Fault:
    """One injected failure; see the module docstring. Mutable: ``times`` and ``fired`` count down/up."""

    target: str = "api"
    kind: str = "status"
    status: int = 503
    retry_after: int = 1
    delay: float = 0.5
    times: int | None = None
    page: int | None = None
    field: str | None = None
    value: Any = None
    client_id: str | None = None
    fired: int = 0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"Unknown fault target {self.target!r}; expected one of {sorted(TARGETS)}.")
        if self.kind not in KINDS:
            raise ValueError(f"Unknown fault kind {self.kind!r}; expected one of {sorted(KINDS)}.")
        if not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise ValueError("Fault status must be an HTTP status code.")
        if not isinstance(self.retry_after, int) or self.retry_after < 0:
            raise ValueError("Fault retry_after must be a whole number of seconds >= 0.")
        if not isinstance(self.delay, int | float) or self.delay < 0:
            raise ValueError("Fault delay must be a number of seconds >= 0.")
        if self.times is not None and (not isinstance(self.times, int) or self.times < 1):
            raise ValueError("Fault times must be None or an integer >= 1.")
        if self.client_id is not None and (not isinstance(self.client_id, str) or self.target != "token"):
            raise ValueError("A fault's client_id is a string, for target 'token' only.")
        if self.page is not None and (not isinstance(self.page, int) or self.page < 1):
            raise ValueError("Fault page must be None or an integer >= 1.")
        if self.kind in API_HOSTILE_KINDS and self.target != "token":
            _check_api_fault(self)
        elif self.kind in TOKEN_KINDS:
            _check_token_fault(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        names = {f.name for f in dataclasses.fields(cls)} - {"fired"}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"Unknown fault field(s): {', '.join(sorted(unknown))}.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def matches(self, targets: tuple[str, ...], page: int | None, client_id: str | None = None) -> bool:
        return (
            self.target in targets
            and (self.page is None or self.page == page)
            and (self.client_id is None or self.client_id == client_id)
        )

    def field_name(self, endpoint: str) -> str:
        return self.field or _DEFAULT_FIELDS[(endpoint, self.kind)]


# --- hostile API answers: checks ---
BATCH_ONLY_KINDS: Final = frozenset({"endless_pages", "alternating_pages", "oversized_page"})


def _check_api_fault(fault: Fault) -> None:
    if fault.kind in BATCH_ONLY_KINDS and fault.target != "batch":
        raise ValueError(f"Fault kind {fault.kind!r} applies to the batch target only.")
    if fault.kind == "echo_token" and fault.status < 400:
        raise ValueError("An echo_token fault's status must be an error (4xx or 5xx).")
    sized = fault.kind in {"gzip_bomb", "json_bomb", "oversized_page"} and fault.value is not None
    if sized and (isinstance(fault.value, bool) or not isinstance(fault.value, int) or fault.value < 1):
        raise ValueError(f"A {fault.kind} fault's value must be None or a size >= 1.")


# --- end of hostile API answers: checks ---


def _check_token_fault(fault: Fault) -> None:
    if fault.target != "token":
        raise ValueError(f"Fault kind {fault.kind!r} applies to the token target only.")
    if fault.kind == "redirect":
        if not 300 <= fault.status <= 399:
            raise ValueError("A redirect fault's status must be a 3xx.")
        if not isinstance(fault.value, str) or not fault.value:
            raise ValueError("A redirect fault's value must be the Location URL.")
    elif fault.kind in {"gzip_bomb", "json_bomb"} and not _is_size_or_none(fault.value):
        raise ValueError(f"A {fault.kind} fault's value must be None or a size >= 1.")


def _is_size_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


def _bad_value(current: Any) -> Any:
    if isinstance(current, str):
        return 12345
    if isinstance(current, bool | int | float):
        return str(current)
    return "oops"


def _bend(obj: dict[str, Any], fault: Fault, name: str) -> None:
    if fault.kind == "missing_field":
        obj.pop(name, None)
    elif fault.value is not None:
        obj[name] = fault.value
    else:
        obj[name] = _bad_value(obj.get(name))


def bend_token_body(body: dict[str, Any], fault: Fault) -> dict[str, Any]:
    """Apply a ``missing_field``/``bad_type`` fault to a successful token response."""
    name = fault.field_name("token")
    bent = dict(body)
    if fault.kind == "bad_type" and fault.value is None and name in _TOKEN_BAD_VALUES:
        bent[name] = _TOKEN_BAD_VALUES[name]
    else:
        _bend(bent, fault, name)
    return bent


def bend_api_body(payload: Any, fault: Fault) -> Any:
    """Apply a ``missing_field``/``bad_type`` fault to a profile, or to a batch page (any envelope)."""
    name = fault.field_name("api")
    if isinstance(payload, dict) and name in ENVELOPE_KEYS and name in payload:
        _bend(payload, fault, name)
        return payload
    if isinstance(payload, list):
        items = payload
    elif isinstance(payload, dict) and ("items" in payload or "results" in payload):
        items = payload["items"] if "items" in payload else payload["results"]
    else:
        items = [payload]
    for item in items:
        _bend(item, fault, name)
    return payload
