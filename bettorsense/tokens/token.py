"""The access token as a value, and the marker left in the cache when one is invalidated."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bettorsense.redaction import fingerprint


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and its lifetime. ``issued_at`` is when the token request was sent."""

    value: str = field(repr=False)
    token_type: str
    issued_at: float
    expires_at: float

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.issued_at

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)

    def seconds_left(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    @property
    def authorization(self) -> str:
        return f"Bearer {self.value}"


@dataclass(frozen=True)
class Tombstone:
    """Left in the shared cache in place of a token the API refused, until that token expires."""

    fingerprint: str


@dataclass(frozen=True)
class Backoff:
    """The fleet does not request a token before ``until`` (epoch seconds): the last request failed."""

    until: float
    error: str  # the failed request's error class
    message: str
