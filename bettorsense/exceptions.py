"""Errors raised by bettorsense, caught by what the caller should do about them.

Everything the vendor or the network can do wrong is a :class:`BettorSenseError`, and each one is of
one kind, which its ``retryable`` class attribute also says:

* :class:`TransientError` (``retryable = True``): it passes on its own; retry later, after
  ``retry_after`` seconds when the error carries it.
* :class:`OperatorActionRequired` (``retryable = False``): retrying does not help until someone
  changes the credentials, the settings or the vendor's grant, or looks at what the vendor answered.
* The caller's own mistake or a final answer about the player (``retryable = False``):
  :class:`InvalidInput` and the :class:`ProfileUnavailable` (404) family.

A wrong configuration is a :class:`BettorSenseConfigurationError`, an ``ImproperlyConfigured`` kept
outside that hierarchy so that a broad ``except BettorSenseError`` never hides it. A sync that could
not start is a :class:`SyncRefused`, outside it too.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from bettorsense.redaction import redact
from bettorsense.text import shorten


class BettorSenseConfigurationError(ImproperlyConfigured):
    """settings.BETTORSENSE is missing something or holds a wrong value."""

    retryable: bool = False


class BettorSenseError(Exception):
    """Base error: carries the HTTP status, the vendor's detail and a hint of what to check.

    The detail is redacted: anything shaped like a token is replaced by its fingerprint.
    """

    #: Whether the same call may succeed later without anyone changing anything.
    retryable: bool = False
    default_hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = redact(message)
        self.status_code = status_code
        self.detail = shorten(redact(detail), 500) if detail else None
        self.hint = hint if hint is not None else self.default_hint
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"(HTTP {self.status_code})")
        if self.detail:
            parts.append(f"Vendor said: {self.detail}")
        if self.retry_after is not None:
            parts.append(f"Retry after {self.retry_after:g} s.")
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"


# --- What the caller should do ------------------------------------------------------------------


class TransientError(BettorSenseError):
    """Retry later: throttling, an outage, a timeout or a backoff that passes on its own."""

    retryable = True


class OperatorActionRequired(BettorSenseError):
    """Retrying does not help: credentials, settings, the vendor's grant or its answers need a person."""

    retryable = False


# --- The token endpoint -------------------------------------------------------------------------


class TokenError(BettorSenseError):
    """The OAuth token could not be obtained."""


class InvalidCredentials(TokenError, OperatorActionRequired):
    default_hint = (
        "Check BETTORSENSE CLIENT_ID and CLIENT_SECRET: integration and production have their own "
        "credentials, and they must match ENVIRONMENT."
    )


class AudienceNotAllowed(TokenError, OperatorActionRequired):
    default_hint = (
        "The client is not enabled for this audience. Check BETTORSENSE ENVIRONMENT/AUDIENCE "
        "(mts-insight-tech-non-prod for integration, mts-insight-tech for production) and ask the "
        "Sportradar integration engineer to grant it."
    )


class TokenRequestRejected(TokenError, OperatorActionRequired):
    default_hint = "The token endpoint refused the request as malformed; check TOKEN_URL and AUDIENCE."


class TokenRateLimited(TokenError, TransientError):
    default_hint = "The token endpoint is throttling; the token is reused until the backoff ends."


class TokenServerError(TokenError, TransientError):
    default_hint = "The token endpoint failed; a still-valid token keeps being served meanwhile."


class TokenTimeout(TokenError, TransientError):
    default_hint = "The token endpoint did not answer in time; check READ_TIMEOUT and the network."


class TokenEndpointUnreachable(TokenError, TransientError):
    default_hint = "Could not connect to the token endpoint; check TOKEN_URL, DNS and outbound firewall."


class MalformedTokenResponse(TokenError, OperatorActionRequired):
    default_hint = "The token endpoint answered something that is not an OAuth token response."


class TokenRedirected(TokenError, OperatorActionRequired):
    """The token endpoint answered a 3xx: the request, which carries the client secret, is never resent.

    ``location`` is where it pointed, without user info, query or fragment (None without a Location).
    """

    default_hint = (
        "TOKEN_URL must be the token endpoint itself, over https; if the endpoint really moved, set "
        "TOKEN_URL to its new address."
    )

    def __init__(self, message: str, *, location: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.location = location


class TokenBackoff(TokenError, TransientError):
    """A recent token request failed and the fleet is backing off; no valid token is left."""


class TokenWaitTimeout(TokenError, TransientError):
    default_hint = "Another process holds the renewal lock; check that it is not stuck (TOKEN_WAIT_TIMEOUT)."


# --- The Bettor Sense API --------------------------------------------------------------------------


class InvalidInput(BettorSenseError, ValueError):
    """An argument was refused: by us before any request was sent (``status_code`` is None), or by
    the API with a 400, which means the vendor now refuses what we validate (tell an operator)."""


class AuthenticationFailed(OperatorActionRequired):
    default_hint = "The API refused a freshly issued token; check the audience and the API_URL."


class AccessDenied(OperatorActionRequired):
    default_hint = "Check the package assigned to these credentials and the BOOKMAKER_ID/SUB_BOOKMAKER_ID they hold."


class ProfileUnavailable(BettorSenseError):
    """A 404: the vendor has no usable profile for this account."""


class PlayerNotFound(ProfileUnavailable):
    default_hint = "The account id is unknown under this bookmaker and sub-bookmaker."


class ProfileNotCreated(ProfileUnavailable):
    default_hint = "The player exists but has no profile yet; profiles need MTS transaction data."


class ProfileInactive(ProfileUnavailable):
    default_hint = "The player's profile is inactive at Sportradar."


class RateLimited(TransientError):
    default_hint = "The API is throttling; wait for Retry-After."


class ServiceUnavailable(TransientError):
    default_hint = "The Bettor Sense API is failing or the circuit breaker is open."


class BadResponse(OperatorActionRequired):
    default_hint = "The API answered with a body that is not the documented shape."


# --- The local store -------------------------------------------------------------------------------


class SyncRefused(Exception):
    """A sync could not start; nothing was fetched or written. Both causes pass: retry later."""

    retryable: bool = True


class SyncAlreadyRunning(SyncRefused):
    """Another process holds the sync lock for these bookmaker ids."""


# --- The access log --------------------------------------------------------------------------------


class AccessNotRecorded(TransientError):
    """A look at a player's risk data inside ``access_purpose`` could not be written to the access
    log (the database failed), so the profile was not returned."""

    default_hint = "The access log's database write failed; retry when the database answers."


class ErasureRefused(InvalidInput):
    """``bettorsense_erase`` cannot keep the rows the settings say to keep (their link to the
    erased profile cannot be null); nothing was changed."""

    default_hint = "Set ERASE_REVIEWS (or ERASE_ACCESS_LOG) to 'delete' for that table, or make the link nullable."


class UnknownClient(BettorSenseConfigurationError):
    """A call named a credential set that ``BETTORSENSE['CLIENTS']`` does not hold."""
