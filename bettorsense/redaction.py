"""Fingerprints and redaction, so no secret reaches a log, a message, a page or a JSON body."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

# Three base64url parts: what a JWT access token looks like, whoever issued it.
_JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


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


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace each known secret, and anything shaped like a JWT, by its fingerprint."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, f"[redacted {fingerprint(secret)}]")
    return _JWT_PATTERN.sub(lambda match: f"[redacted {fingerprint(match.group(0))}]", text)
