"""HTTP calls to the Bettor Sense API: the bearer token, retries, the breaker and error mapping.

* GETs are retried with exponential backoff and jitter on connection errors, timeouts, 429
  (honouring ``Retry-After``), 502, 503 and 504, at most ``MAX_RETRIES`` times and within
  ``RETRY_BUDGET`` seconds.
* A 401 invalidates that exact token for the fleet (only if it is still the cached one) and the
  call is retried once with a new token; a second 401 raises :class:`AuthenticationFailed`.
* One deadline covers the whole call: no retry starts after ``RETRY_BUDGET`` seconds, and nothing of
  the call (a wait, a connection, a body still arriving) runs past ``RETRY_BUDGET + READ_TIMEOUT``.
* Every answer is streamed and read up to ``API_MAX_BYTES`` after decompression; anything that goes
  wrong while sending or reading becomes a typed error raised without its cause, whose frames would
  hold the Authorization header.
* The vendor does not document error bodies (docs/vendor-api.md §7): we branch on the status and read
  ``title``/``detail`` (ProblemDetails) or the text when there is one.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, cast
from urllib.parse import urlencode

import requests
from django.views.decorators.debug import sensitive_variables
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from bettorsense import metrics, telemetry, tokens, tracing
from bettorsense.client.breaker import get_breaker
from bettorsense.client.http import BodyDeadlineExceeded, BodyTooLarge, get_session, parse_retry_after, read_body
from bettorsense.client.routes import route_template
from bettorsense.client.validation import path_segment
from bettorsense.conf import Config
from bettorsense.exceptions import (
    AccessDenied,
    AuthenticationFailed,
    BadResponse,
    BettorSenseError,
    InvalidInput,
    PlayerNotFound,
    ProfileInactive,
    ProfileNotCreated,
    RateLimited,
    ServiceUnavailable,
)
from bettorsense.redaction import redact
from bettorsense.text import shorten

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
#: The start of an error answer is read for its detail; the rest is left unread.
ERROR_BODY_MAX_BYTES: Final = 64 * 1024
#: The longest ``Retry-After`` a RateLimited error passes on to its caller (the far side's word is
#: not believed beyond it; the call itself never waits past RETRY_BUDGET).
RETRY_AFTER_MAX: Final = 3600.0
_DEADLINE_PASSED: Final = "timed out: it ran past its deadline (RETRY_BUDGET + READ_TIMEOUT)"


def build_url(
    config: Config, segments: tuple[str, ...], params: dict[str, Any] | None = None, *, account_id: str | None = None
) -> str:
    """The API base URL, each segment and then ``account_id`` percent-encoded on its own, then the query."""
    return _completed(_resource(config.api_url, segments, account_id is not None)[0], params, account_id)


def _completed(url: str, params: dict[str, Any] | None, account_id: str | None) -> str:
    if account_id is not None:
        url += "/" + path_segment(account_id)
    if params:
        url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
    return url


@lru_cache(maxsize=256)
def _resource(api_url: str, segments: tuple[str, ...], with_account: bool) -> tuple[str, str]:
    """The URL and the route template of a resource's fixed segments, built once per process.

    The segments are the API's words and bookmaker ids, a few per deployment; the account id, which
    would fill this cache with players, is never among them (``build_url``'s ``account_id``).
    """
    url = api_url + "/" + "/".join(path_segment(segment) for segment in segments)
    return url, route_template((*segments, "")) if with_account else route_template(segments)


def get_json(
    config: Config, segments: tuple[str, ...], params: dict[str, Any] | None = None, *, account_id: str | None = None
) -> Any:
    """GET one API resource as parsed JSON, through the breaker; raises a typed error otherwise.

    ``segments`` are the path's fixed words and bookmaker ids; a player's account id, the last
    segment of the single-profile resource, is passed as ``account_id``.
    """
    prefix, route = _resource(config.api_url, segments, account_id is not None)
    url = _completed(prefix, params, account_id)
    breaker = get_breaker(config)
    breaker.before_call()
    started = time.monotonic()
    try:
        body = _get_with_retries(config, url, route, started)
    except BettorSenseError as err:
        if isinstance(err, ServiceUnavailable):
            breaker.record_failure()
        took = time.monotonic() - started
        telemetry.record_api_call(config, err, took)
        metrics.api_request(config, route, err.status_code, took)
        raise
    breaker.record_success()
    took = time.monotonic() - started
    telemetry.record_api_call(config, None, took)
    metrics.api_request(config, route, 200, took)
    return body


@lru_cache(maxsize=16)
def _send_settings(api_url: str) -> dict[str, Any]:
    """The transport adapter's keywords: proxies and CA bundle from the environment, a streamed body.

    ``Session.request`` re-reads HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE... on every call, which
    costs more than a loopback round trip; they are read once per process and API URL instead. The
    environment's settings carry a "stream" of their own: the body is always streamed here.
    """
    settings: dict[str, Any] = {**get_session().merge_environment_settings(api_url, {}, None, None, None)}
    settings["stream"] = True
    return settings


@dataclass(frozen=True)
class _Reply:
    """What one attempt received: the status, ``Retry-After`` and the whole (bounded) body."""

    status: int
    retry_after: str | None
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class _Failure:
    """Why one attempt received no answer to act on; ``retryable`` failures may be tried again."""

    description: str
    retryable: bool = False
    error: type[BettorSenseError] = ServiceUnavailable


def _send(config: Config, url: str, token: tokens.AccessToken, timeout: tuple[float, float]) -> requests.Response:
    """``Session.send`` without what a call that follows no redirect does not use.

    The adapter is the one the session has mounted for the URL (a host's own transport too), sent
    the keywords ``Session.send`` would send it. Left out: the redirect machinery (no redirect is
    followed, and ``Session.send`` would still build a generator to look for one) and ``elapsed``.
    Response hooks still run, and the cookies an answer sets are kept in the session's jar.
    """
    session = get_session()
    prepared = _prepare(session, url, token)
    settings = _send_settings(config.api_url)
    response = session.get_adapter(url).send(prepared, timeout=timeout, **settings)
    for hook in prepared.hooks["response"]:  # as requests.hooks.dispatch_hook runs them
        replaced = hook(response, timeout=timeout, **settings)
        if replaced is not None:
            response = replaced
    if response.cookies:  # a load balancer's affinity cookie, as the adapter parsed it: sent back next time
        session.cookies.update(response.cookies)
    return response


def _prepare(session: requests.Session, url: str, token: tokens.AccessToken) -> requests.PreparedRequest:
    """The GET, prepared by hand from the session's headers, hooks and cookies.

    ``Session.prepare_request`` would merge and re-validate every setting of the session, and
    re-read ``~/.netrc``, on every call: a fifth of a loopback call's time. A netrc entry for the
    API's host would also replace the bearer token with Basic credentials, so it is not read.
    The token is a checked RFC 6750 b64token (``tokens.endpoint.B64TOKEN``): no header to re-validate.
    """
    prepared = requests.PreparedRequest()
    prepared.method = "GET"
    # The URL as built: preparing it would un-escape %2E and let ".." collapse the path.
    prepared.url = url
    # The session's headers are ours (http._new_session): str values, as the stubs cannot know.
    headers = cast("CaseInsensitiveDict[str]", CaseInsensitiveDict(session.headers))
    headers["Authorization"] = token.authorization
    prepared.headers = headers
    if any(session.hooks.values()):  # a new PreparedRequest holds empty hooks already
        prepared.prepare_hooks(session.hooks)
    if session.cookies:  # set by an answer (a load balancer's affinity cookie): sent back, as before
        prepared.prepare_cookies(session.cookies)  # only read, for the Cookie header (no redirect is followed)
    return prepared


def _attempt(config: Config, url: str, token: tokens.AccessToken, deadline: float) -> _Reply | _Failure:
    """One request and its whole answer, never raising: the caller raises, from a frame of its own.

    Whatever fails here (requests, urllib3, a MemoryError while inflating, a bug in a transport
    adapter) becomes a :class:`_Failure`. Its exception is dropped here, so no traceback holding the
    request's frames (and their Authorization header) reaches an error report.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return _Failure(_DEADLINE_PASSED)
    timeout = (min(config.connect_timeout, remaining), min(config.read_timeout, remaining))
    try:
        response = _send(config, url, token, timeout)
    except requests.Timeout:
        return _Failure("timed out", retryable=True)
    except requests.RequestException as err:
        return _Failure(f"failed ({type(err).__name__})", retryable=True)
    except Exception as err:  # MemoryError and RecursionError too: typed, never a 500
        return _Failure(f"failed ({type(err).__name__})")
    status = response.status_code
    try:
        body = read_body(
            response,
            # An error's body is only read for its detail: the start of it is enough.
            max_bytes=config.api_max_bytes if status == 200 else ERROR_BODY_MAX_BYTES,
            truncate=status != 200,
            deadline=deadline,
            read_timeout=config.read_timeout,
        )
    except BodyTooLarge as err:
        return _Failure(f"answered {status} with a body larger than API_MAX_BYTES ({err.limit})", error=BadResponse)
    except BodyDeadlineExceeded:
        return _Failure(_DEADLINE_PASSED)
    except (ReadTimeoutError, TimeoutError):
        if time.monotonic() >= deadline:
            return _Failure(_DEADLINE_PASSED)
        return _Failure("timed out", retryable=True)
    except DecodeError:
        return _Failure(f"answered {status} with a body that does not decompress", error=BadResponse)
    except (ProtocolError, OSError) as err:
        return _Failure(f"failed while reading the answer ({type(err).__name__})", retryable=True)
    except Exception as err:  # as above
        return _Failure(f"failed while reading the answer ({type(err).__name__})")
    finally:
        response.close()
    return _Reply(status, response.headers.get("Retry-After"), body)


def _get_with_retries(config: Config, url: str, route: str, started: float) -> Any:
    # No retry starts after retry_until; the attempt under way may still read until the deadline.
    retry_until = started + config.retry_budget
    deadline = retry_until + config.read_timeout
    attempt = 0
    reauthenticated = False
    manager = tokens.get_token_manager(config)
    sends = 0
    while True:
        token = manager.get_token()
        sent = time.monotonic()
        with tracing.http_client_span("GET", config.api_url, route, resend_count=sends) as span:
            outcome = _attempt(config, url, token, deadline)
            if isinstance(outcome, _Failure):
                span.error_type = outcome.error.__name__
            else:
                span.status = outcome.status
        sends += 1
        if isinstance(outcome, _Failure):
            delay = _backoff(config, attempt)
            if outcome.retryable and _may_retry(config, attempt, retry_until, delay):
                logger.info("API call %s; retry %d in %.2f s", outcome.description, attempt + 1, delay)
                time.sleep(delay)
                attempt += 1
                continue
            raise outcome.error(f"The Bettor Sense API call {outcome.description}.")
        status = outcome.status
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("API GET status %s in %.0f ms", status, (time.monotonic() - sent) * 1000)
        if status == 200:
            body = _parse_json(outcome.body)
            if isinstance(body, BadResponse):
                raise body
            return body
        detail = _detail(outcome.body, token)
        if status == 401:
            if reauthenticated:
                raise AuthenticationFailed("The API refused the bearer token twice.", status_code=401, detail=detail)
            manager.invalidate(token.value)
            reauthenticated = True
            logger.info("API answered 401 to token %s; renewing it once", token.fingerprint)
            continue
        if status in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(outcome.retry_after, maximum=RETRY_AFTER_MAX)
            delay = max(_backoff(config, attempt), retry_after or 0.0)
            if _may_retry(config, attempt, retry_until, delay):
                logger.info("API answered %s; retry %d in %.2f s", status, attempt + 1, delay)
                time.sleep(delay)
                attempt += 1
                continue
            if status == 429:
                raise RateLimited(
                    "The Bettor Sense API is rate limiting.", status_code=429, detail=detail, retry_after=retry_after
                )
            raise ServiceUnavailable(
                f"The Bettor Sense API answered {status} after {attempt + 1} attempts.",
                status_code=status,
                detail=detail,
            )
        raise error_for(status, detail)


def _backoff(config: Config, attempt: int) -> float:
    ceiling = config.retry_backoff * 2.0**attempt
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311  (jitter, not crypto)


def _may_retry(config: Config, attempt: int, retry_until: float, delay: float) -> bool:
    """Another attempt only if it would start, after its wait, within the retry budget."""
    return attempt < config.max_retries and time.monotonic() + delay < retry_until


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: Built once: ``json.loads(..., parse_constant=...)`` builds a decoder on every call.
_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def _parse_json(body: bytes) -> Any:
    """The parsed body, or the BadResponse to raise (returned: this frame holds the far side's bytes).

    NaN and Infinity are refused (they are not JSON); nesting deep enough to exhaust the stack, or a
    body whose objects exhaust memory, is a BadResponse like any other unreadable body.
    """
    try:
        # What json.loads does with bytes: UTF-8, -16 or -32, told apart by the first bytes.
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (ValueError, RecursionError, MemoryError):
        return BadResponse("The Bettor Sense API answered 200 with a body that is not JSON.", status_code=200)


@sensitive_variables()
def _detail(body: bytes, token: tokens.AccessToken) -> str | None:
    """ProblemDetails ``title``/``detail`` if the body has them, else the start of the text.

    The token sent with the request is redacted wherever the answer echoes it, before anything is
    cut short (a token cut in half would no longer match).
    """
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError, MemoryError):
        text = redact(body.decode("utf-8", "replace").strip(), (token.value,))
        return shorten(text, 300) or None
    if isinstance(parsed, dict):
        parts = [str(parsed[k]) for k in ("title", "detail", "message", "error") if parsed.get(k)]
        return redact(" - ".join(dict.fromkeys(parts)), (token.value,)) or None
    if isinstance(parsed, str):
        return shorten(redact(parsed, (token.value,)), 300)
    return None


def error_for(status: int, detail: str | None) -> BettorSenseError:
    """The typed error for a non-retryable, non-200 answer, from its status and (redacted) detail."""
    if status == 404:
        text = (detail or "").lower()
        if "not created" in text:
            return ProfileNotCreated("Player profile not created.", status_code=404, detail=detail)
        if "inactive" in text:
            return ProfileInactive("Player profile is inactive.", status_code=404, detail=detail)
        return PlayerNotFound("Player not found.", status_code=404, detail=detail)
    if status == 403:
        return AccessDenied("The API refused access to this bookmaker.", status_code=403, detail=detail)
    if status == 400:
        return InvalidInput("The API rejected the request as invalid.", status_code=400, detail=detail)
    if status >= 500:
        return ServiceUnavailable(f"The Bettor Sense API failed with {status}.", status_code=status, detail=detail)
    return BadResponse(f"The Bettor Sense API answered an unexpected {status}.", status_code=status, detail=detail)
