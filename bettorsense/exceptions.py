"""Errors raised by bettorsense, caught by meaning.

Everything the vendor or the network can do wrong is a :class:`BettorSenseError`. A wrong
configuration is a :class:`BettorSenseConfigurationError`, an ``ImproperlyConfigured`` kept outside
that hierarchy so that a broad ``except BettorSenseError`` never hides it.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from bettorsense.redaction import redact


class BettorSenseConfigurationError(ImproperlyConfigured):
    """settings.BETTORSENSE is missing something or holds a wrong value."""


class BettorSenseError(Exception):
    """Base error: carries the HTTP status, the vendor's detail and a hint of what to check.

    The detail is redacted: anything shaped like a token is replaced by its fingerprint.
    """

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
        self.detail = redact(detail)[:500] if detail else None
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


# --- The token endpoint -------------------------------------------------------------------------


class TokenError(BettorSenseError):
    """The OAuth token could not be obtained."""


class InvalidCredentials(TokenError):
    default_hint = (
        "Check BETTORSENSE CLIENT_ID and CLIENT_SECRET: integration and production have their own "
        "credentials, and they must match ENVIRONMENT."
    )


class AudienceNotAllowed(TokenError):
    default_hint = (
        "The client is not enabled for this audience. Check BETTORSENSE ENVIRONMENT/AUDIENCE "
        "(mts-insight-tech-non-prod for integration, mts-insight-tech for production) and ask the "
        "Sportradar integration engineer to grant it."
    )


class TokenRequestRejected(TokenError):
    default_hint = "The token endpoint refused the request as malformed; check TOKEN_URL and AUDIENCE."


class TokenRateLimited(TokenError):
    default_hint = "The token endpoint is throttling; the token is reused until the backoff ends."


class TokenServerError(TokenError):
    default_hint = "The token endpoint failed; a still-valid token keeps being served meanwhile."


class TokenTimeout(TokenError):
    default_hint = "The token endpoint did not answer in time; check READ_TIMEOUT and the network."


class TokenEndpointUnreachable(TokenError):
    default_hint = "Could not connect to the token endpoint; check TOKEN_URL, DNS and outbound firewall."


class MalformedTokenResponse(TokenError):
    default_hint = "The token endpoint answered something that is not an OAuth token response."


class TokenBackoff(TokenError):
    """A recent token request failed and the fleet is backing off; no valid token is left."""


class TokenWaitTimeout(TokenError):
    default_hint = "Another process holds the renewal lock; check that it is not stuck (TOKEN_WAIT_TIMEOUT)."


# --- The Bettor Sense API --------------------------------------------------------------------------


class InvalidInput(BettorSenseError, ValueError):
    """An argument was refused before any request was sent."""


class AuthenticationFailed(BettorSenseError):
    default_hint = "The API refused a freshly issued token; check the audience and the API_URL."


class AccessDenied(BettorSenseError):
    default_hint = "Check the package assigned to these credentials and the BOOKMAKER_ID/SUB_BOOKMAKER_ID they hold."


class ProfileUnavailable(BettorSenseError):
    """A 404: the vendor has no usable profile for this account."""


class PlayerNotFound(ProfileUnavailable):
    default_hint = "The account id is unknown under this bookmaker and sub-bookmaker."


class ProfileNotCreated(ProfileUnavailable):
    default_hint = "The player exists but has no profile yet; profiles need MTS transaction data."


class ProfileInactive(ProfileUnavailable):
    default_hint = "The player's profile is inactive at Sportradar."


class RateLimited(BettorSenseError):
    default_hint = "The API is throttling; wait for Retry-After."


class ServiceUnavailable(BettorSenseError):
    default_hint = "The Bettor Sense API is failing or the circuit breaker is open."


class BadResponse(BettorSenseError):
    default_hint = "The API answered with a body that is not the documented shape."


# --- The local store -------------------------------------------------------------------------------


class SyncRefused(Exception):
    """A sync could not start; nothing was fetched or written."""


class SyncAlreadyRunning(SyncRefused):
    """Another process holds the sync lock for these bookmaker ids."""
