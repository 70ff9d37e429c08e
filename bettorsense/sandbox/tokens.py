"""HS256 JSON Web Tokens for the sandbox token server (standard library only).

Auth0 signs with RS256 and publishes a JWKS; the sandbox signs with HS256 and a random key per
:class:`~bettorsense.sandbox.state.SandboxState`, because nothing outside the sandbox verifies
its tokens. Clients must treat the token as opaque, exactly as with the real service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

HEADER = {"alg": "HS256", "typ": "JWT"}


class TokenError(ValueError):
    """A bearer token that cannot be accepted; the message is safe to send back to the caller."""


def fingerprint(token: str) -> str:
    """A short, non-reversible id of a token for logs and stats (never log the token itself)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError) as err:
        raise TokenError("The token is not a well-formed JWT.") from err


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def encode(claims: dict[str, Any], key: bytes, *, kid: str | None = None) -> str:
    """Sign ``claims`` with HMAC-SHA256 and return the compact JWT."""
    header = dict(HEADER, kid=kid) if kid else HEADER
    signing_input = f"{_b64encode(_dumps(header))}.{_b64encode(_dumps(claims))}"
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64encode(signature)}"


def decode(token: str, key: bytes) -> dict[str, Any]:
    """Verify the signature of ``token`` and return its claims; raise :class:`TokenError`.

    Only the signature and the shape are checked here; expiry, audience and revocation are the
    state's business, since it holds the record of every token it issued.
    """
    parts = token.split(".")
    if not token.isascii() or len(parts) != 3 or not all(parts):
        raise TokenError("The token is not a well-formed JWT.")
    header_b64, claims_b64, signature_b64 = parts
    try:
        header = json.loads(_b64decode(header_b64))
    except ValueError as err:
        raise TokenError("The token header is not valid JSON.") from err
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("The token algorithm is not accepted.")
    expected = hmac.new(key, f"{header_b64}.{claims_b64}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _b64decode(signature_b64)):
        raise TokenError("The token signature is invalid.")
    try:
        claims = json.loads(_b64decode(claims_b64))
    except ValueError as err:
        raise TokenError("The token payload is not valid JSON.") from err
    if not isinstance(claims, dict):
        raise TokenError("The token payload is not a JSON object.")
    return claims
