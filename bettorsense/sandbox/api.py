"""The two Bettor Sense endpoints, under ``/api/rg`` (production) and ``/ci/api/rg`` (integration).

The raw request path is split on ``/`` first and each segment is percent-decoded afterwards, so
``%2F`` inside an account id belongs to the id. Literal segments must match exactly (case and
all; no trailing slash, no empty account id); anything else is a 404.

Order of checks, as in an ASP.NET Core service: route (404), method (405), injected fault, bearer
token (401), parameter validation (400), bookmaker permission (403), then the profile (404/200).
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final
from urllib.parse import parse_qsl, unquote

from bettorsense.sandbox import profiles
from bettorsense.sandbox.faults import BATCH_ONLY_KINDS, HTML_PAGE, Fault, bend_api_body
from bettorsense.sandbox.profiles import Status, classify
from bettorsense.sandbox.responses import HTML, JSON, Response, dumps, phrase, problem
from bettorsense.sandbox.state import ENVIRONMENT_AUDIENCES, RecordedRequest, SandboxState

logger = logging.getLogger(__name__)

PREFIXES: Final[dict[str, tuple[str, ...]]] = {
    "production": ("api", "rg"),
    "integration": ("ci", "api", "rg"),
}
PROFILE_LITERALS: Final = (
    "v1",
    "Operator",
    "PlayerRiskProfile",
    "bookmakers",
    None,
    "sub-bookmakers",
    None,
    "accountid",
    None,
)
BATCH_LITERALS: Final = ("v1", "Operator", "RiskProfiles", "bookmakers", None, "sub-bookmakers", None)
INT32_MAX: Final = 2_147_483_647
ACCOUNT_ID_MAX: Final = 64
_DIGITS: Final = re.compile(r"[0-9]{1,10}")  # also keeps int() away from huge strings
GZIP_BOMB_BYTES: Final = 306_000
OVERSIZED_PAGE_ITEMS: Final = 200_000
JSON_BOMB_DEPTH: Final = 5000
#: Faults that shape the answer once the request is authenticated and its parameters are read.
_AUTHORIZED_FAULTS: Final = BATCH_ONLY_KINDS | {"echo_token"}


@dataclass(frozen=True)
class Route:
    name: str  # "profile" or "batch"
    environment: str
    bookmaker: str
    sub_bookmaker: str
    account_id: str | None


class _Invalid(Exception):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


def match_route(raw_path: str) -> Route | None:
    """The route of a raw (still percent-encoded) path, or None."""
    segments = raw_path.split("/")
    if segments[0] != "":
        return None
    segments = segments[1:]
    for env, prefix in PREFIXES.items():
        if tuple(segments[: len(prefix)]) == prefix:
            environment, rest = env, segments[len(prefix) :]
            break
    else:
        return None
    for name, literals in (("profile", PROFILE_LITERALS), ("batch", BATCH_LITERALS)):
        if len(rest) != len(literals):
            continue
        if all(lit is None or seg == lit for seg, lit in zip(rest, literals, strict=True)):
            values = [_decode(seg) for seg, lit in zip(rest, literals, strict=True) if lit is None]
            if any(not value for value in values):
                return None  # an empty segment matches no ASP.NET route
            account = values[2] if name == "profile" else None
            return Route(name, environment, values[0], values[1], account)
    return None


def _decode(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return segment  # left as sent; it will fail validation or lookup


def _int32(parameter: str, value: str) -> int:
    if not _DIGITS.fullmatch(value) or int(value) > INT32_MAX:
        raise _Invalid(parameter, f"The value '{value}' is not valid for {parameter}.")
    return int(value)


def _page(raw: str | None) -> int:
    if raw is None:
        return 1
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= INT32_MAX:
        raise _Invalid("page", f"The value '{raw}' is not valid for page; it must be an integer >= 1.")
    return int(raw)


def parse_instant(raw: str) -> float:
    """Epoch seconds of an ISO-8601 date (midnight UTC) or date-time (naive = UTC)."""
    text = raw.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _bearer(authorization: str | None) -> str | None:
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    return authorization[7:].strip() or None


def _challenge(description: str | None) -> list[tuple[str, str]]:
    if description is None:  # RFC 6750 section 3.1: no error code when no credentials were sent
        return [("WWW-Authenticate", "Bearer")]
    quoted = description.replace("\\", "\\\\").replace('"', '\\"')
    return [("WWW-Authenticate", f'Bearer error="invalid_token", error_description="{quoted}"')]


def handle_api_request(
    state: SandboxState, method: str, raw_path: str, query_string: str, authorization: str | None
) -> Response:
    query_pairs = parse_qsl(query_string, keep_blank_values=True)
    query: dict[str, str] = {}
    for key, value in query_pairs:
        query.setdefault(key, value)
    route = match_route(raw_path)
    client_id: str | None = None
    if route is None:
        response = problem(404, f"No endpoint matches {method} {raw_path}.")
    elif method != "GET":
        response = problem(405, f"{method} is not allowed here; use GET.", headers=[("Allow", "GET")])
    else:
        response, client_id = _handle(state, route, query, authorization)
    state.record_request(
        RecordedRequest(
            method=method,
            path=raw_path,
            route=route.name if route else None,
            environment=route.environment if route else None,
            account_id=route.account_id if route else None,
            bookmaker_id=route.bookmaker if route else None,
            sub_bookmaker_id=route.sub_bookmaker if route else None,
            query=query,
            status=None if response.hang else response.status,
            client_id=client_id,
            at=state.clock(),
        )
    )
    return response


def _handle(
    state: SandboxState, route: Route, query: dict[str, str], authorization: str | None
) -> tuple[Response, str | None]:
    lowered = {key.lower(): value for key, value in reversed(query.items())}  # ASP.NET: keys ignore case
    page_raw = lowered.get("page") if route.name == "batch" else None
    try:
        page_for_faults: int | None = _page(page_raw) if route.name == "batch" else None
    except _Invalid:
        page_for_faults = None
    targets = ("api", route.name)

    delay = drip = 0.0
    shaping: Fault | None = None
    fault = state.take_fault(targets, body=False, page=page_for_faults)
    if fault is not None:
        if fault.kind == "slow":
            delay = fault.delay
        elif fault.kind == "drip":
            drip = fault.delay
        elif fault.kind in _AUTHORIZED_FAULTS:
            shaping = fault
        else:
            logger.info("Sandbox %s request answered by fault %s", route.name, fault.kind)
            return _fault_response(fault), None
    response, client_id = _authorized(state, route, lowered, page_raw, authorization, targets, shaping)
    response.delay = delay
    response.drip = drip
    return response, client_id


def _authorized(
    state: SandboxState,
    route: Route,
    lowered: dict[str, str],
    page_raw: str | None,
    authorization: str | None,
    targets: tuple[str, ...],
    shaping: Fault | None = None,
) -> tuple[Response, str | None]:
    token = _bearer(authorization)
    if token is None:
        return problem(401, "No bearer token was sent.", headers=_challenge(None)), None
    if shaping is not None and shaping.kind == "echo_token":
        # A misbehaving gateway that copies the request's credentials into its error page.
        return problem(shaping.status, f"Request refused; it was sent with Authorization: Bearer {token}."), None
    record, reason = state.authenticate(token, ENVIRONMENT_AUDIENCES[route.environment])
    if record is None:
        return problem(401, reason, headers=_challenge(reason)), None

    try:
        bookmaker = _int32("bookmakerId", route.bookmaker)
        sub_bookmaker = _int32("subBookmakerId", route.sub_bookmaker)
        if route.account_id is not None and len(route.account_id) > ACCOUNT_ID_MAX:
            raise _Invalid("accountId", f"accountId must be 1 to {ACCOUNT_ID_MAX} characters long.")
        page = _page(page_raw)
        date_raw = lowered.get(state.batch_date_param.lower()) if route.name == "batch" else None
        try:
            changed_since = parse_instant(date_raw) if date_raw else None
        except ValueError:
            raise _Invalid(
                state.batch_date_param, f"The value '{date_raw}' is not a valid ISO-8601 date or date-time."
            ) from None
    except _Invalid as err:
        response = problem(
            400, err.message, title="One or more validation errors occurred.", errors={err.parameter: [err.message]}
        )
        return response, record.client_id

    client = state.clients.get(record.client_id)
    if client is None or (bookmaker, sub_bookmaker) not in client.bookmakers:
        detail = f"The client may not read bookmaker {bookmaker}, sub-bookmaker {sub_bookmaker}."
        return problem(403, detail), record.client_id

    if route.name == "profile":
        response = _profile(state, bookmaker, sub_bookmaker, route.account_id or "")
    elif shaping is not None:
        response = _hostile_batch(state, bookmaker, sub_bookmaker, page, changed_since, shaping)
    else:
        response = _batch(state, bookmaker, sub_bookmaker, page, changed_since)
    if response.status == 200:
        body_fault = state.take_fault(targets, body=True, page=page if route.name == "batch" else None)
        if body_fault is not None:
            response = _bend(response, body_fault)
    return response, record.client_id


def _profile(state: SandboxState, bookmaker: int, sub_bookmaker: int, account_id: str) -> Response:
    status, index = classify(account_id, state.player_count)
    if status is not Status.ACTIVE or index is None:
        detail = f"{status.value}: account '{account_id}' of bookmaker {bookmaker}, sub-bookmaker {sub_bookmaker}."
        return problem(404, detail, title=status.value)
    ref = state.profile_ref(bookmaker, sub_bookmaker, index)
    return Response(200, state.profile_json(bookmaker, sub_bookmaker, ref), JSON)


def _batch(state: SandboxState, bookmaker: int, sub_bookmaker: int, page: int, changed_since: float | None) -> Response:
    page_size = state.page_size
    refs, total = state.batch_refs(bookmaker, sub_bookmaker, page, page_size, changed_since)
    items = b"[" + b",".join(state.profile_json(bookmaker, sub_bookmaker, ref) for ref in refs) + b"]"
    envelope = state.batch_envelope
    if envelope == "bare":
        body = items
    elif envelope == "results":
        body = b'{"results":' + items + b"}"
    else:
        pages = -(-total // page_size)
        tail = f',"page":{page},"pageSize":{page_size},"totalPages":{pages},"totalCount":{total}}}'
        body = b'{"items":' + items + tail.encode()
    return Response(200, body, JSON)


def _hostile_batch(
    state: SandboxState, bookmaker: int, sub_bookmaker: int, page: int, changed_since: float | None, fault: Fault
) -> Response:
    """Pages that never end, repeat, or hold far more than a page: bare arrays, no page count to stop at."""
    page_size = state.page_size
    if fault.kind == "endless_pages":
        day = state.current_day
        first = (page - 1) * page_size + 1
        items = [
            profiles.profile_json(state.seed, bookmaker, sub_bookmaker, index, 0, day)
            for index in range(first, first + page_size)
        ]
        return Response(200, b"[" + b",".join(items) + b"]", JSON)
    if fault.kind == "alternating_pages":
        refs, _ = state.batch_refs(bookmaker, sub_bookmaker, 2 - page % 2, page_size, changed_since)
        return Response(
            200, b"[" + b",".join(state.profile_json(bookmaker, sub_bookmaker, r) for r in refs) + b"]", JSON
        )
    count = OVERSIZED_PAGE_ITEMS if fault.value is None else int(fault.value)
    # Small items: a page this long is refused for its length before any profile is read.
    return Response(200, b"[" + b",".join(b'{"playerId":"player_%d"}' % n for n in range(1, count + 1)) + b"]", JSON)


def _fault_response(fault: Fault) -> Response:
    if fault.kind == "hang":
        return Response(0, hang=True)
    if fault.kind == "retry_after":
        retry_after = str(fault.retry_after if fault.value is None else fault.value)
        return problem(429, "Injected fault: too many requests.", headers=[("Retry-After", retry_after)])
    if fault.kind == "gzip_bomb":
        size = GZIP_BOMB_BYTES if fault.value is None else int(fault.value)
        return Response(200, gzip_bomb(size), JSON, [("Content-Encoding", "gzip")])
    if fault.kind == "json_bomb":
        depth = JSON_BOMB_DEPTH if fault.value is None else int(fault.value)
        return Response(200, b"[" * depth + b"]" * depth, JSON)
    return problem(fault.status, f"Injected fault: HTTP {fault.status} {phrase(fault.status)}.")


_BOMB_MEMBER_INFLATED: Final = 8 * 1024 * 1024


@functools.lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """About ``size`` bytes of gzip that inflate to ~1000 times as many bytes of one JSON string.

    Decoders inflate the members of a gzip body one after the other, so repeating one small member
    builds the bomb without ever holding what it inflates to.
    """
    opening = gzip.compress(b'"', mtime=0)
    member = gzip.compress(b"0" * _BOMB_MEMBER_INFLATED, compresslevel=9, mtime=0)
    return opening + member * max(1, (size - len(opening)) // len(member))


def _bend(response: Response, fault: Fault) -> Response:
    if fault.kind == "non_json":
        return Response(200, HTML_PAGE, HTML)
    return Response(200, dumps(bend_api_body(json.loads(response.body), fault)), response.content_type)
