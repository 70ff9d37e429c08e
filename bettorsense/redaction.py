"""Fingerprints and redaction, so no secret reaches a log, a message, a page or a JSON body.

Two ways in:

* :func:`redact` for any free text: known secrets passed in, plus whatever is shaped like a
  credential (a JWT, ``Bearer <token68>``, the user info of a URL).
* :func:`redact_for` for text about one configuration: it adds that configuration's secrets and the
  fleet's current token itself, so that no caller keeps a collection of secrets in a local variable
  (error reports and error trackers show every frame's locals).

:func:`safe_url` is the one way a configured URL is shown or put into a message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from django.views.decorators.debug import sensitive_variables

if TYPE_CHECKING:
    from bettorsense.conf import Config

# Three base64url parts: what a JWT access token looks like, whoever issued it.
_JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# RFC 6750 §2.1: "Bearer" then a b64token (token68 of RFC 7235), whatever the token's shape.
_BEARER_PATTERN = re.compile(r"\b(Bearer)(\s+)([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)
_TOKEN_MARKS = frozenset("0123456789-_~+/=")
# The user info of a URL: "scheme://user:password@" (RFC 3986 §3.2.1).
_URL_USERINFO_PATTERN = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#@]+)@")


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for a secret: ``sha256:`` and 12 hex digits."""
    if not secret:
        return "none"
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def mask(value: str, *, visible: int = 4) -> str:
    """Keep the last few characters of a non-secret identifier such as a client id."""
    if not value:
        return ""
    if len(value) <= visible * 2:
        return "•" * len(value)
    return "•" * (len(value) - visible) + value[-visible:]


def _redacted(secret: str) -> str:
    return f"[redacted {fingerprint(secret)}]"


def _redact_bearer(match: re.Match[str]) -> str:
    scheme, space, credential = match.groups()
    # Prose says "the bearer token." too: a credential is long, or holds a digit or a mark.
    word = credential.rstrip(".")
    if len(word) < 8 or (len(word) < 20 and not _TOKEN_MARKS.intersection(word)):
        return match.group(0)
    return f"{scheme}{space}{_redacted(credential)}"


@sensitive_variables()
def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace each known secret, and anything shaped like a credential, by its fingerprint."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, _redacted(secret))
    text = _URL_USERINFO_PATTERN.sub(lambda match: f"{match.group(1)}[redacted]@", text)
    text = _BEARER_PATTERN.sub(_redact_bearer, text)
    return _JWT_PATTERN.sub(lambda match: _redacted(match.group(0)), text)


@sensitive_variables()
def _secrets_of(config: Config) -> Iterator[str]:
    yield config.client_secret
    yield config.health_token
    yield from config.encryption_keys
    from bettorsense import tokens  # the token code imports this module

    try:
        current = tokens.get_token_manager(config).peek()
    except Exception:  # redaction must not fail: the text is still redacted without the token
        current = None
    if current is not None:
        yield current.value


@sensitive_variables()
def redact_for(config: Config, text: str) -> str:
    """:func:`redact`, plus the secrets of ``config`` and the fleet's current token for it."""
    return redact(text, _secrets_of(config))


def safe_url(url: str) -> str:
    """The URL without user info, query or fragment (a misconfigured URL may carry credentials)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
