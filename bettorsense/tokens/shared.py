"""The fleet's shared token state in the Django cache: token, renewal lock and backoff.

Keys are ``<KEY_PREFIX>:<credentials identity>:<name>``; the identity hashes the token URL, the
audience and the client id, so a token is never reused across credentials or environments.
Every backend failure becomes :class:`CacheUnavailable`, which the token manager survives.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache, caches

from bettorsense.cache import CacheUnavailable, cache_key, guard_cache, ttl_seconds
from bettorsense.conf import Config
from bettorsense.exceptions import BettorSenseError
from bettorsense.locks import OwnerLock
from bettorsense.tokens.clock import SYSTEM_CLOCK, Clock
from bettorsense.tokens.crypto import seal, unseal
from bettorsense.tokens.token import AccessToken, Backoff, Tombstone

__all__ = ["Backoff", "FleetState", "SharedTokenCache"]


def _entry_ttl(token: AccessToken, now: float) -> int:
    """How long the cache keeps a token's entry: one second beyond the token's expiry.

    Django's database cache stores expiry in whole seconds, truncated, so ``ceil(seconds_left)``
    alone can drop the entry up to a second before the token expires, inside a short renewal
    window. When a token is still usable is TokenTiming's business, not the cache's.
    """
    return ttl_seconds(token.seconds_left(now)) + 1


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
        # Single flight: held for one token request at most, so it outlives the request's timeouts.
        self.renewal_lock = OwnerLock(config, "lock", ttl=config.connect_timeout + config.read_timeout + 5)
        self.lock_key = self.renewal_lock.key
        self.backoff_key = cache_key(config, "backoff")
        self.failures_key = cache_key(config, "failures")

    @property
    def cache(self) -> BaseCache:
        return caches[self.config.cache_alias]

    def read_state(self) -> FleetState:
        """Token, backoff and lock in one round trip."""
        with guard_cache():
            found = self.cache.get_many([self.token_key, self.backoff_key, self.lock_key])
        holder = found.get(self.lock_key)
        return FleetState(
            token=self._unseal_token(found.get(self.token_key)),
            backoff=self._active_backoff(found.get(self.backoff_key)),
            lock_holder=holder if isinstance(holder, str) else None,
        )

    # --- token --------------------------------------------------------------------------------

    def read_token(self) -> AccessToken | Tombstone | None:
        with guard_cache():
            sealed = self.cache.get(self.token_key)
        return self._unseal_token(sealed)

    def _unseal_token(self, sealed: Any) -> AccessToken | Tombstone | None:
        if not isinstance(sealed, str):
            return None
        data = unseal(self.config, sealed)
        if data is None:
            return None  # sealed under another key (SECRET_KEY rotated) or tampered with
        if "tombstone" in data:
            return Tombstone(fingerprint=str(data["tombstone"]))
        try:
            return AccessToken(
                value=str(data["v"]),
                token_type=str(data["t"]),
                issued_at=float(data["i"]),
                expires_at=float(data["e"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def _seal_token(self, token: AccessToken) -> str:
        payload: dict[str, Any] = {
            "v": token.value,
            "t": token.token_type,
            "i": token.issued_at,
            "e": token.expires_at,
        }
        return seal(self.config, payload)

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
        current = self.read_token()
        if not isinstance(current, AccessToken) or current.value != token_value:
            return False
        sealed = seal(self.config, {"tombstone": current.fingerprint})
        with guard_cache():
            self.cache.set(self.token_key, sealed, _entry_ttl(current, self.clock.now()))
        return True

    # --- backoff ------------------------------------------------------------------------------

    def read_backoff(self) -> Backoff | None:
        with guard_cache():
            data = self.cache.get(self.backoff_key)
        return self._active_backoff(data)

    def _active_backoff(self, data: Any) -> Backoff | None:
        """The entry as a backoff ending within BACKOFF_MAX, or None if it is over or unreadable.

        The entry may be foreign (another version of the app, a hand-edited cache) or older than a
        change of BACKOFF_MAX: the cap keeps any of them from stopping the fleet for longer.
        """
        if not isinstance(data, dict):
            return None
        try:
            until = float(data.get("until", 0))
        except (TypeError, ValueError, OverflowError):
            return None
        now = self.clock.now()
        if not until > now:  # also refuses NaN
            return None
        return Backoff(
            until=min(until, now + self.config.backoff_max),
            error=str(data.get("error", ""))[:100],
            message=str(data.get("message", ""))[:300],
        )

    def write_backoff(self, err: BettorSenseError, delay: float) -> None:
        delay = min(delay, self.config.backoff_max) if delay >= 0 else 0.0
        data = {"until": self.clock.now() + delay, "error": type(err).__name__, "message": str(err)[:300]}
        # Read back, as the token is: a dropped write would let every waiting caller request again.
        with contextlib.suppress(CacheUnavailable):
            self._set_confirmed(self.backoff_key, data, ttl_seconds(delay))

    def count_failure(self) -> int:
        """Consecutive failed token requests across the fleet, this one included."""
        try:
            with guard_cache():
                self.cache.add(self.failures_key, 0, ttl_seconds(self.config.backoff_max * 4))
                return int(self.cache.incr(self.failures_key))
        except (CacheUnavailable, ValueError):
            return 1

    def clear_backoff(self) -> None:
        try:
            with guard_cache():
                self.cache.delete_many([self.backoff_key, self.failures_key])
        except CacheUnavailable:
            pass
