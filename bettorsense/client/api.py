"""HTTP calls to the Bettor Sense API: the bearer token, retries, the breaker and error mapping.

* GETs are retried with exponential backoff and jitter on connection errors, timeouts, 429
  (honouring ``Retry-After``), 502, 503 and 504, at most ``MAX_RETRIES`` times and within
  ``RETRY_BUDGET`` seconds.
* A 401 invalidates that exact token for the fleet (only if it is still the cached one) and the
  call is retried once with a new token; a second 401 raises :class:`AuthenticationFailed`.
* The vendor does not document error bodies (docs/vendor-api.md §7): we branch on the status and read
  ``title``/``detail`` (ProblemDetails) or the text when there is one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import requests

from bettorsense import telemetry, tokens
from bettorsense.client.breaker import get_breaker
from bettorsense.client.http import get_session, parse_retry_after
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

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


def build_url(config: Config, segments: Sequence[str], params: dict[str, Any] | None = None) -> str:
    """The API base URL, then each segment percent-encoded on its own, then the query."""
    url = config.api_url + "/" + "/".join(path_segment(segment) for segment in segments)
    if params:
        url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
    return url


def get_json(config: Config, segments: Sequence[str], params: dict[str, Any] | None = None) -> Any:
    """GET one API resource as parsed JSON, through the breaker; raises a typed error otherwise."""
    url = build_url(config, segments, params)
    breaker = get_breaker(config)
    breaker.before_call()
    started = time.monotonic()
    try:
        body = _get_with_retries(config, url)
    except BettorSenseError as err:
        if isinstance(err, ServiceUnavailable):
            breaker.record_failure()
        telemetry.record_api_call(config, err, time.monotonic() - started)
        raise
    breaker.record_success()
    telemetry.record_api_call(config, None, time.monotonic() - started)
    return body


@lru_cache(maxsize=16)
def _environment_settings(api_url: str) -> dict[str, Any]:
    """Proxies and CA bundle from the environment (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE...).

    ``Session.request`` re-reads them on every call, which costs more than a loopback round trip;
    they are read once per process and API URL instead.
    """
    settings: dict[str, Any] = {**get_session().merge_environment_settings(api_url, {}, None, None, None)}
    return settings


def _send(config: Config, url: str, token: tokens.AccessToken) -> requests.Response:
    session = get_session()
    prepared = session.prepare_request(
        requests.Request("GET", config.api_url, headers={"Authorization": token.authorization})
    )
    # Set after preparing: requests would otherwise un-escape %2E and let ".." collapse the path.
    prepared.url = url
    return session.send(
        prepared, timeout=config.timeout, allow_redirects=False, **_environment_settings(config.api_url)
    )


def _get_with_retries(config: Config, url: str) -> Any:
    deadline = time.monotonic() + config.retry_budget
    attempt = 0
    reauthenticated = False
    manager = tokens.get_token_manager(config)
    while True:
        token = manager.get_token()
        started = time.monotonic()
        try:
            response = _send(config, url, token)
        except requests.RequestException as err:
            kind = "timed out" if isinstance(err, requests.Timeout) else f"failed ({type(err).__name__})"
            delay = _backoff(config, attempt)
            if _may_retry(config, attempt, deadline, delay):
                logger.info("API call %s; retry %d in %.2f s", kind, attempt + 1, delay)
                time.sleep(delay)
                attempt += 1
                continue
            # "from None": the chained frames hold the Authorization header (see tokens._fetch).
            raise ServiceUnavailable(f"The Bettor Sense API call {kind}.") from None
        status = response.status_code
        logger.debug("API GET status %s in %.0f ms", status, (time.monotonic() - started) * 1000)
        if status == 200:
            return _json(response)
        if status == 401:
            if reauthenticated:
                raise AuthenticationFailed(
                    "The API refused the bearer token twice.", status_code=401, detail=_detail(response)
                )
            manager.invalidate(token.value)
            reauthenticated = True
            logger.info("API answered 401 to token %s; renewing it once", token.fingerprint)
            continue
        if status in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            delay = max(_backoff(config, attempt), retry_after or 0.0)
            if _may_retry(config, attempt, deadline, delay):
                logger.info("API answered %s; retry %d in %.2f s", status, attempt + 1, delay)
                time.sleep(delay)
                attempt += 1
                continue
            if status == 429:
                raise RateLimited(
                    "The Bettor Sense API is rate limiting.",
                    status_code=429,
                    detail=_detail(response),
                    retry_after=retry_after,
                )
            raise ServiceUnavailable(
                f"The Bettor Sense API answered {status} after {attempt + 1} attempts.",
                status_code=status,
                detail=_detail(response),
            )
        raise error_for(response)


def _backoff(config: Config, attempt: int) -> float:
    ceiling = config.retry_backoff * 2.0**attempt
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311  (jitter, not crypto)


def _may_retry(config: Config, attempt: int, deadline: float, delay: float) -> bool:
    return attempt < config.max_retries and time.monotonic() + delay < deadline


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise BadResponse(
            "The Bettor Sense API answered 200 with a body that is not JSON.", status_code=response.status_code
        ) from None


def _detail(response: requests.Response) -> str | None:
    """ProblemDetails ``title``/``detail`` if the body has them, else the start of the text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] or None
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("title", "detail", "message", "error") if body.get(k)]
        return " - ".join(dict.fromkeys(parts)) or None
    if isinstance(body, str):
        return body[:300]
    return None


def error_for(response: requests.Response) -> BettorSenseError:
    """The typed error for a non-retryable, non-200 answer."""
    status = response.status_code
    detail = _detail(response)
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
