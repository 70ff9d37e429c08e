"""The vendor's token endpoint: one client-credentials request, and what its answer means.

docs/vendor-api.md §2 describes the request and the answers mapped here. Nothing the far side
sends is believed without a bound:

* the request never follows a redirect (a 3xx is :class:`TokenRedirected`), so the form body with
  the client secret goes to ``TOKEN_URL`` and nowhere else;
* the answer is read with a byte limit counted after decompression (``TOKEN_MAX_BYTES``), and the
  whole request, slow heads and bodies included, ends by ``CONNECT_TIMEOUT + READ_TIMEOUT``
  (:class:`~bettorsense.client.http.RequestWatch`), which the renewal lock's TTL exceeds;
* ``expires_in`` lies between one second and one day, the token is an RFC 6750 b64token of at most
  ``TOKEN_MAX_LENGTH`` characters, and ``Retry-After`` is capped at ``BACKOFF_MAX``;
* the answer's ``Date`` header and the token's ``iat`` claim update this process's estimate of its
  offset to the token server (:class:`~bettorsense.tokens.clock.ServerClock`), within
  ``CLOCK_SKEW_MAX``; the token's issue and expiry times are on the server's clock.

Every failure is a :class:`TokenError` raised with no chained exception and no traceback through
requests' frames: error reports show every frame's locals, and requests' frames hold the form body.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urljoin

import requests
import urllib3
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables

from bettorsense import tracing
from bettorsense.client.http import (
    BodyDeadlineExceeded,
    BodyTooLarge,
    RequestWatch,
    deadline_adapter,
    get_session,
    parse_retry_after,
    read_body,
)
from bettorsense.conf import DEFAULTS, Config
from bettorsense.exceptions import (
    AudienceNotAllowed,
    InvalidCredentials,
    MalformedTokenResponse,
    TokenEndpointUnreachable,
    TokenError,
    TokenRateLimited,
    TokenRedirected,
    TokenRequestRejected,
    TokenServerError,
    TokenTimeout,
)
from bettorsense.redaction import redact, redact_for, safe_url
from bettorsense.tokens.clock import (
    SYSTEM_CLOCK,
    Clock,
    OffsetEstimate,
    ServerClock,
    estimate_offset,
    http_date_seconds,
)
from bettorsense.tokens.token import AccessToken

#: RFC 6750 §2.1: the characters of a bearer credential. Anything else cannot go in a header.
B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MIN_EXPIRES_IN: Final = 1.0
MAX_EXPIRES_IN: Final = 86400.0


def request_deadline(config: Config) -> float:
    """The longest one token request may take, connection and whole answer included."""
    return config.connect_timeout + config.read_timeout


class TokenEndpoint:
    """Requests tokens for one set of credentials; a token's lifetime starts when its request is sent.

    Every answer, a refusal included, updates :attr:`server_clock`, which the token manager shares.
    """

    def __init__(self, config: Config, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        if not isinstance(clock, ServerClock):
            clock = ServerClock(clock, max_offset=config.clock_skew_max)
        self.server_clock = clock

    @method_decorator(sensitive_variables())
    def request_token(self) -> AccessToken:
        """One token request, exactly as the vendor documents it (docs/vendor-api.md §2)."""
        with tracing.http_client_span("POST", self.config.token_url) as span:
            outcome = _exchange(self.config, self.server_clock)
            if isinstance(outcome, TokenError):
                span.status, span.error_type = outcome.status_code, type(outcome).__name__
            else:
                span.status = 200
        if isinstance(outcome, TokenError):
            # Raised here, outside any except block: nothing is chained to it.
            raise outcome
        return outcome

    def probe_clock(self) -> OffsetEstimate | None:
        """Measure the offset to the token server without a token request: a HEAD of ``TOKEN_URL``.

        For a process that does not request tokens itself. No credentials are sent, any status
        will do (only ``Date`` is read), and the answer must come within ``CONNECT_TIMEOUT``.
        Returns the estimate adopted, or None (no answer, no usable ``Date``, or refused).
        """
        local = self.server_clock.local
        timeout = self.config.connect_timeout
        sent_at = local.now()
        try:
            response = get_session().head(self.config.token_url, timeout=(timeout, timeout), allow_redirects=False)
        except Exception:  # the probe is best effort: no answer means no estimate
            return None
        received_at = local.now()
        date = response.headers.get("Date")
        _close(response)
        estimate = estimate_offset(sent_at=sent_at, received_at=received_at, date=http_date_seconds(date), iat=None)
        if estimate is None or not self.server_clock.observe(estimate):
            return None
        return estimate


@sensitive_variables()
def _exchange(config: Config, server_clock: ServerClock) -> AccessToken | TokenError:
    """The request and its answer; a failure is returned, detached from the frames it came from."""
    # Real time, whatever clock the manager runs on: this bounds waiting on a socket.
    deadline = time.monotonic() + request_deadline(config)
    sent_at = server_clock.local.now()
    session = get_session()
    deadline_adapter(session, config.token_url)
    # The watch cuts the connection at the deadline, status line and headers included; the body is
    # also read against it (read_body), which names the cause more precisely.
    with RequestWatch(deadline) as watch:
        outcome = _exchange_within(session, config, server_clock, sent_at=sent_at, deadline=deadline)
    if watch.fired and isinstance(outcome, TokenEndpointUnreachable | MalformedTokenResponse):
        return _too_slow(config)  # the cut-off connection, not the far side, ended the answer
    return outcome


@sensitive_variables()
def _exchange_within(
    session: requests.Session, config: Config, server_clock: ServerClock, *, sent_at: float, deadline: float
) -> AccessToken | TokenError:
    try:
        response = session.post(
            config.token_url,
            data={
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "audience": config.audience,
                "grant_type": "client_credentials",
            },
            timeout=config.timeout,
            allow_redirects=False,
            stream=True,
        )
    except Exception as err:  # any failure, MemoryError included, is a TokenError
        return _request_failure(err, config)
    try:
        return _answer(response, config, server_clock, sent_at=sent_at, deadline=deadline)
    except TokenError as err:
        return _detached(err)
    except Exception as err:  # RecursionError, MemoryError, a decoder's own errors...
        return MalformedTokenResponse(
            f"The token endpoint's answer could not be read ({type(err).__name__}).",
            status_code=response.status_code,
        )
    finally:
        # Never back to the pool: the connection may hold the rest of a bomb, or a shortened timeout.
        _close(response)


def _request_failure(err: Exception, config: Config) -> TokenError:
    where = safe_url(config.token_url)
    if isinstance(err, requests.Timeout):
        return TokenTimeout(f"Token request to {where} timed out ({type(err).__name__}).")
    if isinstance(err, requests.RequestException):
        return TokenEndpointUnreachable(f"Token request to {where} failed: {type(err).__name__}.")
    return MalformedTokenResponse(f"Token request to {where} failed unexpectedly ({type(err).__name__}).")


def _detached(err: TokenError) -> TokenError:
    """``err`` without its traceback and chained exceptions, whose frames hold the answer's body."""
    err.__traceback__ = None
    err.__context__ = None
    err.__cause__ = None
    err.__suppress_context__ = True
    return err


def _close(response: requests.Response) -> None:
    try:
        response.raw.close()
        response.close()
    except Exception:  # noqa: S110  (closing a broken connection may fail; it is gone either way)
        pass


@sensitive_variables()
def _answer(
    response: requests.Response, config: Config, server_clock: ServerClock, *, sent_at: float, deadline: float
) -> AccessToken:
    status = response.status_code
    if 300 <= status < 400:
        raise _redirected(response, config)
    body = _read_limited(response, config, deadline=deadline)
    received_at = server_clock.local.now()
    _observe_clock(server_clock, response, body, config, sent_at=sent_at, received_at=received_at)
    return _interpret(
        status,
        body,
        response.headers.get("Retry-After"),
        sent_at=sent_at + server_clock.offset,  # from here on, the server's time
        max_token_length=config.token_max_length,
        backoff_max=config.backoff_max,
        redact_detail=lambda text: redact_for(config, text),
    )


@sensitive_variables()
def _observe_clock(
    server_clock: ServerClock,
    response: requests.Response,
    body: bytes,
    config: Config,
    *,
    sent_at: float,
    received_at: float,
) -> None:
    """Update the offset estimate from the answer's ``Date`` and, on a 200 with a JWT, its ``iat``."""
    iat = None
    if response.status_code == 200:
        answer = _json_or_none(body)
        value = answer.get("access_token") if isinstance(answer, dict) else None
        if isinstance(value, str) and len(value) <= config.token_max_length:
            iat = _jwt_claim(value, "iat")
    date = http_date_seconds(response.headers.get("Date"))
    estimate = estimate_offset(sent_at=sent_at, received_at=received_at, date=date, iat=iat)
    if estimate is not None:
        server_clock.observe(estimate)


def _redirected(response: requests.Response, config: Config) -> TokenRedirected:
    location = response.headers.get("Location")
    where = safe_url(urljoin(config.token_url, location)) if location else "nowhere (no Location header)"
    return TokenRedirected(
        f"The token endpoint answered {response.status_code} pointing to {where}; "
        "the token request is never sent anywhere but TOKEN_URL.",
        status_code=response.status_code,
        location=where if location else None,
    )


@sensitive_variables()
def _read_limited(response: requests.Response, config: Config, *, deadline: float) -> bytes:
    """The body, decompressed, at most ``TOKEN_MAX_BYTES``, read before ``deadline``."""
    try:
        return read_body(
            response, max_bytes=config.token_max_bytes, deadline=deadline, read_timeout=config.read_timeout
        )
    except BodyTooLarge:
        raise MalformedTokenResponse(
            f"The token endpoint's answer is larger than TOKEN_MAX_BYTES "
            f"({config.token_max_bytes} bytes, decompressed).",
            status_code=response.status_code,
        ) from None
    except (BodyDeadlineExceeded, TimeoutError, urllib3.exceptions.TimeoutError):
        raise _too_slow(config) from None
    except (OSError, urllib3.exceptions.ProtocolError) as err:
        raise TokenEndpointUnreachable(
            f"The token endpoint's answer broke off ({type(err).__name__}).", status_code=response.status_code
        ) from None


def _too_slow(config: Config) -> TokenTimeout:
    return TokenTimeout(
        f"The token request took longer than CONNECT_TIMEOUT + READ_TIMEOUT "
        f"({config.connect_timeout + config.read_timeout:g} s)."
    )


@sensitive_variables("secrets", "body", "response")
def parse_token_response(response: requests.Response, *, sent_at: float, secrets: tuple[str, ...] = ()) -> AccessToken:
    """Map a token endpoint response to a token or to the typed error that says what to check.

    For a response already read (``response.content``), with the default bounds.
    """
    return _interpret(
        response.status_code,
        response.content or b"",
        response.headers.get("Retry-After"),
        sent_at=sent_at,
        max_token_length=int(DEFAULTS["TOKEN_MAX_LENGTH"]),
        backoff_max=float(DEFAULTS["BACKOFF_MAX"]),
        redact_detail=lambda text: redact(text, secrets),
    )


@sensitive_variables()
def _interpret(
    status: int,
    body: bytes,
    retry_after: str | None,
    *,
    sent_at: float,
    max_token_length: int,
    backoff_max: float,
    redact_detail: Callable[[str], str],
) -> AccessToken:
    answer = _json_or_none(body)
    error, description = "", ""
    if isinstance(answer, dict):
        error = str(answer.get("error") or "")[:200]
        description = redact_detail(str(answer.get("error_description") or "")[:1000])
    detail = f"{error}: {description}".strip(": ") or None
    if status == 200:
        return _token_from_body(answer, sent_at=sent_at, max_length=max_token_length)
    if status == 401:
        raise InvalidCredentials(
            "The token endpoint rejected the client credentials.", status_code=status, detail=detail
        )
    if status == 403:
        if error == "access_denied":
            raise AudienceNotAllowed(
                "The token endpoint refused the audience for this client.", status_code=status, detail=detail
            )
        raise InvalidCredentials("The token endpoint refused this client.", status_code=status, detail=detail)
    if status == 429:
        raise TokenRateLimited(
            "The token endpoint is rate limiting this client.",
            status_code=status,
            detail=detail,
            retry_after=bounded_retry_after(retry_after, now=sent_at, cap=backoff_max),
        )
    if 400 <= status < 500:
        raise TokenRequestRejected("The token endpoint rejected the request.", status_code=status, detail=detail)
    raise TokenServerError("The token endpoint failed.", status_code=status, detail=detail)


def bounded_retry_after(value: str | None, *, now: float, cap: float) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), finite and at most ``cap``."""
    try:
        seconds = parse_retry_after(value, now=now)
    except Exception:  # a header the parser chokes on says nothing usable
        return None
    if seconds is None or not math.isfinite(seconds):
        return None  # "Infinity" is no number of seconds; the fleet's own backoff applies
    return min(max(0.0, seconds), cap)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


@sensitive_variables()
def _token_from_body(body: Any, *, sent_at: float, max_length: int) -> AccessToken:
    if not isinstance(body, dict):
        raise MalformedTokenResponse("The token endpoint answered 200 without a JSON object.", status_code=200)
    value = body.get("access_token")
    if not isinstance(value, str) or not value.strip():
        raise MalformedTokenResponse("The token response has no access_token string.", status_code=200)
    if len(value) > max_length:
        raise MalformedTokenResponse(
            f"The token response's access_token is longer than TOKEN_MAX_LENGTH ({max_length}).", status_code=200
        )
    if not B64TOKEN.fullmatch(value):
        raise MalformedTokenResponse(
            "The token response's access_token has characters a bearer token cannot have (RFC 6750 §2.1).",
            status_code=200,
        )
    expires_in = body.get("expires_in")
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN  # False for NaN and the infinities
    ):
        raise MalformedTokenResponse(
            "The token response's expires_in is not a number of seconds between 1 and 86400.", status_code=200
        )
    # token_type is always sent by Auth0; if absent we assume Bearer, the only type the API takes.
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise MalformedTokenResponse("The token response's token_type is not Bearer.", status_code=200)
    return AccessToken(
        value=value,
        token_type="Bearer",  # noqa: S106  (the scheme name)
        issued_at=sent_at,
        # Auth0 writes exp = floor(its clock) + expires_in, so counting from our send time alone can
        # outlive the claim by up to a second, which a gateway that checks exp would refuse.
        expires_at=min(sent_at + float(expires_in), _jwt_claim(value, "exp") or math.inf),
    )


@sensitive_variables()
def _jwt_claim(value: str, name: str) -> float | None:
    """A numeric claim (``exp``, ``iat``) if the token is a JWT, read unverified.

    Used only to shorten the lifetime and to estimate the clock offset; a token that is no JWT, or
    a claim that is no finite number, gives None.
    """
    parts = value.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        claim = claims.get(name) if isinstance(claims, dict) else None
        if isinstance(claim, bool) or not isinstance(claim, int | float):
            return None
        seconds = float(claim)
    except (ValueError, TypeError, RecursionError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) else None
