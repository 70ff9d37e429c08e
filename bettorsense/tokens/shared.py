"""The fleet's shared token state in the Django cache: token, renewal lock and backoff.

Keys are ``<KEY_PREFIX>:<credentials identity>:<name>`` (with the credential set's name after the
prefix for a set other than ``default``, :func:`bettorsense.cache.cache_key`); the identity hashes
the token URL, the audience and the client id, so a token is never reused across credential sets,
credentials or environments.
Every backend failure becomes :class:`CacheUnavailable`, which the token manager survives.

The token (or tombstone) and the backoff are sealed entries (:mod:`bettorsense.sealing`), checked
field by field on read (:mod:`bettorsense.entries`); the failure counter is a plain integer, as
``cache.incr`` needs, checked for range.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache

from bettorsense import entries
from bettorsense.atomic import compare_and_swap
from bettorsense.cache import CacheUnavailable, backend_of, cache_key, guard_cache, shared_cache, ttl_past, ttl_seconds
from bettorsense.conf import Config
from bettorsense.exceptions import BettorSenseError
from bettorsense.locks import OwnerLock
from bettorsense.sealing import seal
from bettorsense.text import shorten
from bettorsense.tokens.clock import CACHE_CLOCK_SLACK, SYSTEM_CLOCK, Clock
from bettorsense.tokens.endpoint import MAX_EXPIRES_IN, request_deadline
from bettorsense.tokens.legacy import open_legacy_token
from bettorsense.tokens.token import AccessToken, Backoff, Tombstone

__all__ = ["Backoff", "FleetState", "SharedTokenCache", "renewal_lock_ttl"]

#: What the renewal lock is held for beyond the token request itself: reading the fleet's state
#: before it, publishing the token (a confirmed write) or the backoff after it.
RENEWAL_LOCK_MARGIN = 5.0


def renewal_lock_ttl(config: Config) -> float:
    """The renewal lock's TTL: longer than the longest a token request can take, so two never overlap."""
    return request_deadline(config) + RENEWAL_LOCK_MARGIN


TOKEN_KIND = "token"  # noqa: S105  (an entry kind, not a secret)
BACKOFF_KIND = "backoff"
FAILURES_KIND = "token failures"
_MAX_TOKEN_TYPE = 64
_MAX_FINGERPRINT = 128
_MAX_ERROR_NAME = 100
_MAX_MESSAGE = 300


def _entry_ttl(token: AccessToken, now: float) -> int:
    """How long the cache keeps a token's entry: beyond the token's expiry (see ``ttl_past``).

    When a token is still usable is TokenTiming's business, not the cache's.
    """
    return ttl_past(token.seconds_left(now)) + CACHE_CLOCK_SLACK  # tokens.clock says why


@dataclass(frozen=True)
class FleetState:
    """The fleet's entries, read together: the token (or tombstone), the backoff, the lock holder."""

    token: AccessToken | Tombstone | None
    backoff: Backoff | None
    lock_holder: str | None


class SharedTokenCache:
    def __init__(self, config: Config, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.token_key = cache_key(config, "token")
        # Single flight: held for one token request at most, so it outlives the request's deadline.
        self.renewal_lock = OwnerLock(config, "lock", ttl=renewal_lock_ttl(config), clock=clock)
        self.lock_key = self.renewal_lock.key
        self.backoff_key = cache_key(config, "backoff")
        self.failures_key = cache_key(config, "failures")

    @property
    def cache(self) -> BaseCache:
        return shared_cache(self.config)

    def read_state(self) -> FleetState:
        """Token, backoff and lock in one round trip."""
        with guard_cache():
            found = self.cache.get_many([self.token_key, self.backoff_key, self.lock_key])
        return FleetState(
            token=self._open_token(found.get(self.token_key)),
            backoff=self._open_backoff(found.get(self.backoff_key)),
            # A stale or foreign lock reads as free: the renewer's acquire() breaks it, bounded.
            lock_holder=self.renewal_lock.holder_of(found.get(self.lock_key)),
        )

    # --- token --------------------------------------------------------------------------------

    def read_token(self) -> AccessToken | Tombstone | None:
        with guard_cache():
            sealed = self.cache.get(self.token_key)
        return self._open_token(sealed)

    def _open_token(self, raw: Any) -> AccessToken | Tombstone | None:
        legacy = open_legacy_token(self.config, raw)
        if legacy is not None:
            with contextlib.suppress(entries.Malformed):
                return self._parse_token(legacy)
        return entries.read_sealed(
            self.config, self.cache, raw, key=self.token_key, kind=TOKEN_KIND, parse=self._parse_token
        )

    def _parse_token(self, data: dict[str, Any]) -> AccessToken | Tombstone:
        """A token whose lifetime is one the token endpoint accepts and whose expiry is no later."""
        if "tombstone" in data:
            return Tombstone(fingerprint=entries.text(data, "tombstone", max_length=_MAX_FINGERPRINT))
        now = self.clock.now()
        issued_at = entries.number(data, "i", low=0.0, high=now + MAX_EXPIRES_IN)
        return AccessToken(
            value=entries.text(data, "v", max_length=self.config.token_max_length),
            token_type=entries.text(data, "t", max_length=_MAX_TOKEN_TYPE),
            issued_at=issued_at,
            expires_at=entries.number(data, "e", low=issued_at, high=min(issued_at, now) + MAX_EXPIRES_IN),
        )

    def _seal_token(self, token: AccessToken) -> str:
        payload: dict[str, Any] = {
            "v": token.value,
            "t": token.token_type,
            "i": token.issued_at,
            "e": token.expires_at,
        }
        return seal(self.config, payload, key=self.token_key, kind=TOKEN_KIND)

    def write_token(self, token: AccessToken) -> bool:
        """Publish a new token; False if the cache would not keep it.

        Django's DatabaseCache.set() swallows a DatabaseError (SQLite's "database is locked" under
        concurrent writers, a unique-key race on PostgreSQL) and returns nothing, so read it back.
        """
        return self._set_confirmed(self.token_key, self._seal_token(token), _entry_ttl(token, self.clock.now()))

    def _set_confirmed(self, key: str, value: Any, ttl: int) -> bool:
        """``cache.set`` read back, a few times; False if the cache would not keep the value."""
        with guard_cache():
            for attempt in range(8):
                self.cache.set(key, value, ttl)
                if self.cache.get(key) == value:
                    return True
                time.sleep(0.005 * (attempt + 1))  # paces the database, so real time, not token time
        return False

    def add_token(self, token: AccessToken) -> bool:
        """Put a token back only if the entry is empty (the cache lost it)."""
        with guard_cache():
            return bool(self.cache.add(self.token_key, self._seal_token(token), _entry_ttl(token, self.clock.now())))

    def tombstone_if_current(self, token_value: str) -> bool:
        """Replace the entry by a tombstone if it still holds this token: one compare-and-set.

        Read, then swap only if the entry is still the one read, so a token another process
        published in between is never overwritten (see :mod:`bettorsense.atomic` per backend).
        """
        with guard_cache():
            stored = self.cache.get(self.token_key)
        current = self._open_token(stored)
        if not isinstance(current, AccessToken) or current.value != token_value:
            return False
        sealed = seal(self.config, {"tombstone": current.fingerprint}, key=self.token_key, kind=TOKEN_KIND)
        with guard_cache():
            swap = compare_and_swap(backend_of(self.cache))
            return swap.replace_if(self.token_key, stored, sealed, _entry_ttl(current, self.clock.now()))

    # --- backoff ------------------------------------------------------------------------------

    def read_backoff(self) -> Backoff | None:
        with guard_cache():
            raw = self.cache.get(self.backoff_key)
        return self._open_backoff(raw)

    def _open_backoff(self, raw: Any) -> Backoff | None:
        """The entry as a backoff ending within BACKOFF_MAX from now, or None if it is over or unreadable.

        The entry may be older than a change of BACKOFF_MAX, or written on a host whose clock is
        ahead: the cap keeps either from stopping the fleet for longer.
        """
        backoff = entries.read_sealed(
            self.config, self.cache, raw, key=self.backoff_key, kind=BACKOFF_KIND, parse=self._parse_backoff
        )
        now = self.clock.now()
        if backoff is None or not backoff.until > now:
            return None
        return Backoff(
            until=min(backoff.until, now + self.config.backoff_max), error=backoff.error, message=backoff.message
        )

    def _parse_backoff(self, data: dict[str, Any]) -> Backoff:
        return Backoff(
            until=entries.number(data, "until", low=0.0),
            error=entries.text(data, "error", max_length=_MAX_ERROR_NAME),
            message=entries.text(data, "message", max_length=_MAX_MESSAGE, required=False),
        )

    def write_backoff(self, err: BettorSenseError, delay: float) -> None:
        delay = min(delay, self.config.backoff_max) if delay >= 0 else 0.0
        message = shorten(str(err), _MAX_MESSAGE)
        data = {"until": self.clock.now() + delay, "error": type(err).__name__, "message": message}
        # Read back, as the token is: a dropped write would let every waiting caller request again.
        with contextlib.suppress(CacheUnavailable, ValueError):
            sealed = seal(self.config, data, key=self.backoff_key, kind=BACKOFF_KIND)
            self._set_confirmed(self.backoff_key, sealed, ttl_past(delay))

    def count_failure(self) -> int:
        """Consecutive failed token requests across the fleet, this one included."""
        ttl = ttl_seconds(self.config.backoff_max * 4)
        try:
            with guard_cache():
                if self.cache.add(self.failures_key, 1, ttl):
                    return 1
                counted = entries.read_count(
                    self.cache, self.cache.incr(self.failures_key), key=self.failures_key, kind=FAILURES_KIND
                )
                if counted is not None:
                    return counted
                self.cache.add(self.failures_key, 1, ttl)  # read_count removed a count out of range
        except CacheUnavailable:
            # incr() raises on a value that is not an integer: start the count again
            with contextlib.suppress(CacheUnavailable), guard_cache():
                self.cache.delete(self.failures_key)
                self.cache.add(self.failures_key, 1, ttl)
        return 1

    def clear_backoff(self) -> None:
        try:
            with guard_cache():
                self.cache.delete_many([self.backoff_key, self.failures_key])
        except CacheUnavailable:
            pass
