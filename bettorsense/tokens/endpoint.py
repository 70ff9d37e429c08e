"""The vendor's token endpoint: one client-credentials request, and what its answer means.

docs/vendor-api.md §2 describes the request and the answers mapped here.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import requests
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables

from bettorsense.client.http import get_session, parse_retry_after
from bettorsense.conf import Config
from bettorsense.exceptions import (
    AudienceNotAllowed,
    InvalidCredentials,
    MalformedTokenResponse,
    TokenEndpointUnreachable,
    TokenRateLimited,
    TokenRequestRejected,
    TokenServerError,
    TokenTimeout,
)
from bettorsense.redaction import redact
from bettorsense.tokens.clock import SYSTEM_CLOCK, Clock
from bettorsense.tokens.token import AccessToken


class TokenEndpoint:
    """Requests tokens for one set of credentials; a token's lifetime starts when its request is sent."""

    def __init__(self, config: Config, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock

    @method_decorator(sensitive_variables())
    def request_token(self) -> AccessToken:
        """One token request, exactly as the vendor documents it (docs/vendor-api.md §2)."""
        config = self.config
        sent_at = self.clock.now()
        try:
            response = get_session().post(
                config.token_url,
                data={
                    "client_id": config.client_id,
                    "client_secret": config.client_secret,
                    "audience": config.audience,
                    "grant_type": "client_credentials",
                },
                timeout=config.timeout,
            )
        # "from None": the chained exception's frames hold the form body with the client secret, and
        # Django's technical 500 page shows every frame's locals.
        except requests.Timeout as err:
            raise TokenTimeout(f"Token request to {config.token_url} timed out ({type(err).__name__}).") from None
        except requests.RequestException as err:
            raise TokenEndpointUnreachable(
                f"Token request to {config.token_url} failed: {type(err).__name__}."
            ) from None
        return parse_token_response(response, sent_at=sent_at, secrets=(config.client_secret,))


@sensitive_variables("secrets", "body", "response")
def parse_token_response(response: requests.Response, *, sent_at: float, secrets: tuple[str, ...] = ()) -> AccessToken:
    """Map a token endpoint response to a token or to the typed error that says what to check."""
    status = response.status_code
    body = _json_or_none(response)
    error, description = "", ""
    if isinstance(body, dict):
        error = str(body.get("error") or "")
        description = redact(str(body.get("error_description") or ""), secrets)
    detail = f"{error}: {description}".strip(": ") or None
    if status == 200:
        return _token_from_body(body, sent_at=sent_at)
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
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if 400 <= status < 500:
        raise TokenRequestRejected("The token endpoint rejected the request.", status_code=status, detail=detail)
    raise TokenServerError("The token endpoint failed.", status_code=status, detail=detail)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


@sensitive_variables("body", "value")
def _token_from_body(body: Any, *, sent_at: float) -> AccessToken:
    if not isinstance(body, dict):
        raise MalformedTokenResponse("The token endpoint answered 200 without a JSON object.", status_code=200)
    value = body.get("access_token")
    if not isinstance(value, str) or not value.strip():
        raise MalformedTokenResponse("The token response has no access_token string.", status_code=200)
    expires_in = body.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or not expires_in > 0:
        raise MalformedTokenResponse("The token response has no positive numeric expires_in.", status_code=200)
    # token_type is always sent by Auth0; if absent we assume Bearer, the only type the API takes.
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise MalformedTokenResponse("The token response's token_type is not Bearer.", status_code=200)
    return AccessToken(
        value=value,
        token_type="Bearer",  # noqa: S106  (the scheme name)
        issued_at=sent_at,
        expires_at=min(sent_at + float(expires_in), _jwt_expiry(value) or math.inf),
    )


def _jwt_expiry(value: str) -> float | None:
    """The ``exp`` claim if the token is a JWT, read unverified and used only to shorten the lifetime.

    Auth0 writes exp = floor(its clock) + expires_in, so counting from our send time alone can
    outlive the claim by up to a second, which a gateway that checks exp would refuse.
    """
    parts = value.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
