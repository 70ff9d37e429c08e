"""Token lifecycle: one OAuth 2.0 client-credentials token for the whole fleet.

Sportradar asks clients to reuse the access token and to request a new one only shortly before
the current one expires. Every process of a deployment (web workers, Celery workers, on many
machines) therefore shares one token through the Django cache:

* The hot path is a process-local memo: a dict-free attribute read and a clock comparison.
* The memo is re-checked against the shared cache every ``LOCAL_RECHECK`` seconds, and often
  while the token is inside its renewal window, so a renewal or invalidation done elsewhere is
  seen quickly.
* Celery beat calls :func:`refresh_if_due` every ``REFRESH_EVERY`` seconds. It renews once the
  token enters its renewal window, ``min(REFRESH_MARGIN, 10% of the lifetime)`` before expiry.
* Request paths renew lazily only in the second half of that window, so with beat running they
  never wait for a token request; with beat down they renew under the same single flight.
* Single flight: one ``cache.add`` lock for the fleet. Processes that hold a still-valid token
  keep using it while another renews; only a caller with no valid token waits, with a bound.
* After a failed request, a backoff kept in the shared cache stops the fleet from hammering the
  token endpoint; a still-valid token keeps being served meanwhile.
* If the cache itself fails, each process falls back to its own token and logs a warning.

The cached token is encrypted and authenticated with Fernet (see :mod:`bettorsense.tokens.crypto`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import NamedTuple

from bettorsense import telemetry
from bettorsense.cache import CacheUnavailable
from bettorsense.conf import Config, get_config
from bettorsense.exceptions import TokenBackoff, TokenError, TokenWaitTimeout
from bettorsense.tokens.clock import SYSTEM_CLOCK, Clock
from bettorsense.tokens.decision import RefreshOutcome, TokenTiming
from bettorsense.tokens.endpoint import TokenEndpoint, parse_token_response
from bettorsense.tokens.shared import SharedTokenCache
from bettorsense.tokens.token import AccessToken, Tombstone

logger = logging.getLogger(__name__)

__all__ = ["RefreshOutcome", "TokenManager", "TokenTiming", "parse_token_response"]

# Poll interval of a caller waiting for another process's renewal, and of the memo re-check
# while the token is inside its renewal window.
_WAIT_POLL = 0.05
_WINDOW_RECHECK = 0.5


class _Memo(NamedTuple):
    token: AccessToken
    timing: TokenTiming
    next_check: float


class TokenManager:
    """The token of one set of credentials, for this process, in front of the shared cache."""

    def __init__(self, config: Config, *, clock: Clock = SYSTEM_CLOCK, endpoint: TokenEndpoint | None = None) -> None:
        self.config = config
        self.clock = clock
        self.store = SharedTokenCache(config, clock=clock)
        self.endpoint = endpoint if endpoint is not None else TokenEndpoint(config, clock)
        self._memo: _Memo | None = None
        self._lock = threading.Lock()
        self._local_backoff_until = 0.0
        self._cache_warned_at = 0.0
        #: Token requests this process made, by origin; tests and the bench read it.
        self.fetch_counts: dict[str, int] = {}

    # --- public -------------------------------------------------------------------------------

    def get_token(self) -> AccessToken:
        """A token that is valid for at least the safety margin, from the memo whenever possible."""
        memo = self._memo
        if memo is not None and self.clock.now() < memo.next_check:
            return memo.token
        return self._slow_path()

    def refresh_if_due(self) -> RefreshOutcome:
        """Beat's job: renew the shared token once it is inside its renewal window."""
        now = self.clock.now()
        try:
            current = self.store.read_token()
            memo = self._memo
            if current is None and memo is not None and now < memo.timing.renew_at:
                # The cache lost the entry (eviction, restart): offer ours back rather than renew early,
                # as the request path does; renewing now would break the vendor's reuse rule.
                self.store.add_token(memo.token)
                current = self.store.read_token()
        except CacheUnavailable as err:
            self._warn_cache(err)
            return RefreshOutcome.CACHE_UNAVAILABLE
        if isinstance(current, AccessToken) and now < TokenTiming.of(current, self.config).renew_at:
            self._remember(current, now)
            return RefreshOutcome.NOT_DUE
        usable = current if isinstance(current, AccessToken) and self._usable(current, now) else None
        try:
            token, outcome = self._renew_shared(usable, origin="beat", wait=False)
        except TokenBackoff:
            return RefreshOutcome.BACKOFF
        except TokenError:
            return RefreshOutcome.FAILED
        except CacheUnavailable as err:
            self._warn_cache(err)
            return RefreshOutcome.CACHE_UNAVAILABLE
        if token is not None:
            self._remember(token, self.clock.now())
        return outcome

    def force_refresh(self, *, origin: str = "manual") -> AccessToken:
        """Request a new token now, under the fleet lock, whatever the current one's age."""
        with self._lock:
            try:
                token, _ = self._renew_shared(None, origin=origin, wait=True, force=True)
            except CacheUnavailable as err:
                self._warn_cache(err)
                token = self._fetch(origin)
            if token is None:  # pragma: no cover - wait=True returns a token or raises
                raise TokenWaitTimeout("No token after waiting for the renewal.")
            self._remember(token, self.clock.now())
            return token

    def invalidate(self, token_value: str) -> bool:
        """Forget this exact token, here and for the fleet, if it is still the current one.

        Called when the API answered 401 to it. Returns whether the shared entry was replaced.
        """
        memo = self._memo
        if memo is not None and memo.token.value == token_value:
            self._memo = None
        try:
            return self.store.tombstone_if_current(token_value)
        except CacheUnavailable as err:
            self._warn_cache(err)
            return False

    def peek(self) -> AccessToken | None:
        """The shared token if there is one (no request, no renewal); the memo when the cache fails."""
        try:
            current = self.store.read_token()
        except CacheUnavailable:
            memo = self._memo
            return memo.token if memo else None
        return current if isinstance(current, AccessToken) else None

    # --- internals ----------------------------------------------------------------------------

    def _usable(self, token: AccessToken, now: float) -> bool:
        return now < TokenTiming.of(token, self.config).usable_until

    def _remember(self, token: AccessToken, now: float, *, quiet_until: float = 0.0) -> None:
        """Memoise a token; ``quiet_until`` is when a fleet backoff ends (no point looking before)."""
        timing = TokenTiming.of(token, self.config)
        if now < timing.renew_at:
            next_check = min(now + self.config.local_recheck, timing.renew_at)
        elif now < timing.lazy_renew_at:
            next_check = min(now + min(self.config.local_recheck, _WINDOW_RECHECK), timing.lazy_renew_at)
        else:  # another process is renewing, or the fleet backs off: look again shortly
            next_check = min(max(now + _WAIT_POLL, quiet_until), timing.usable_until)
        self._memo = _Memo(token, timing, next_check)

    def _slow_path(self) -> AccessToken:
        now = self.clock.now()
        memo = self._memo
        usable = memo.token if memo is not None and now < memo.timing.usable_until else None
        # One thread per process talks to the fleet; the others keep a still-valid token.
        if usable is not None:
            if not self._lock.acquire(blocking=False):
                return usable
        elif not self._lock.acquire(timeout=self.config.token_wait_timeout):
            raise TokenWaitTimeout("Timed out waiting for this process's token renewal.")
        try:
            memo = self._memo
            now = self.clock.now()
            if memo is not None and now < memo.next_check:
                return memo.token
            return self._sync_with_fleet(now)
        finally:
            self._lock.release()

    def _sync_with_fleet(self, now: float) -> AccessToken:
        memo = self._memo
        local = memo.token if memo is not None and now < memo.timing.usable_until else None
        try:
            return self._sync_shared(local, now)
        except CacheUnavailable as err:
            self._warn_cache(err)
            return self._without_cache(local, now)

    def _sync_shared(self, local: AccessToken | None, now: float) -> AccessToken:
        shared = self.store.read_token()
        if isinstance(shared, Tombstone):
            if local is not None and local.fingerprint == shared.fingerprint:
                local = None
        elif isinstance(shared, AccessToken) and self._usable(shared, now):
            local = shared  # converge on the fleet's token
        elif shared is None and local is not None and now < TokenTiming.of(local, self.config).renew_at:
            # The cache lost the entry (eviction, restart): offer ours back rather than renew early.
            # Not inside the renewal window, where it would race the renewer's write of the new one.
            self.store.add_token(local)
        if local is not None and now < TokenTiming.of(local, self.config).lazy_renew_at:
            self._remember(local, now)
            return local
        token, outcome = self._renew_shared(local, origin="request", wait=True)
        if token is not None and token is local and not self._usable(token, self.clock.now()):
            # ``local`` was usable when this call began; the cache round-trips since used up its
            # last moments. Never hand it out now: wait for the renewal (bounded) or fail.
            token, outcome = self._renew_shared(None, origin="request", wait=True)
        if token is None:  # pragma: no cover - wait=True returns a token or raises
            raise TokenWaitTimeout("No token after waiting for the renewal.")
        if outcome not in (RefreshOutcome.BACKOFF, RefreshOutcome.FAILED):
            self._remember(token, self.clock.now())
        return token

    def _renew_shared(
        self, usable: AccessToken | None, *, origin: str, wait: bool, force: bool = False
    ) -> tuple[AccessToken | None, RefreshOutcome]:
        """Renew under the fleet lock. Returns a token (or ``usable``) and what happened."""
        deadline = self.clock.now() + self.config.token_wait_timeout
        while True:
            backoff = self.store.read_backoff()
            if backoff is not None and not force:
                if usable is not None:
                    self._remember(usable, self.clock.now(), quiet_until=backoff.until)
                    return usable, RefreshOutcome.BACKOFF
                raise TokenBackoff(
                    f"No valid token: the last token request failed ({backoff.error}); "
                    f"the fleet retries in {max(0.0, backoff.until - self.clock.now()):.1f} s.",
                    detail=backoff.message,
                    retry_after=max(0.0, backoff.until - self.clock.now()),
                )
            # Test before test-and-set: a failed add() is still a write, and a write storm at
            # renewal time makes the database cache drop the renewer's own write.
            owner = None if self.store.lock_holder() is not None else self.store.acquire_lock()
            if owner is not None:
                try:
                    if not force:
                        current = self.store.read_token()
                        now = self.clock.now()
                        if isinstance(current, AccessToken) and (
                            now < TokenTiming.of(current, self.config).renew_at
                            or (origin == "request" and now < TokenTiming.of(current, self.config).lazy_renew_at)
                        ):
                            return current, RefreshOutcome.NOT_DUE
                    return self._fetch_and_publish(origin, usable)
                finally:
                    self.store.release_lock(owner)
            if not wait:
                return usable, RefreshOutcome.BUSY
            if usable is not None:
                return usable, RefreshOutcome.BUSY
            if self.clock.now() >= deadline:
                raise TokenWaitTimeout("Timed out waiting for another process to renew the token.")
            self.clock.sleep(_WAIT_POLL * (0.5 + random.random()))  # noqa: S311  (jitter, not crypto)
            current = self.store.read_token()
            if isinstance(current, AccessToken) and self._usable(current, self.clock.now()):
                return current, RefreshOutcome.NOT_DUE

    def _fetch_and_publish(self, origin: str, usable: AccessToken | None) -> tuple[AccessToken, RefreshOutcome]:
        started = self.clock.now()
        try:
            token = self._fetch(origin)
        except TokenError as err:
            delay = self._backoff_delay(err)
            self.store.write_backoff(err, delay)
            telemetry.record_token_failure(self.config, err, origin=origin, duration=self.clock.now() - started)
            if usable is not None and self._usable(usable, self.clock.now()):
                logger.warning(
                    "Token renewal failed (%s); still serving token %s, %.0f s left; next try in %.1f s",
                    type(err).__name__,
                    usable.fingerprint,
                    usable.seconds_left(self.clock.now()),
                    delay,
                )
                self._remember(usable, self.clock.now(), quiet_until=self.clock.now() + delay)
                return usable, RefreshOutcome.FAILED
            raise
        try:
            if not self.store.write_token(token):
                logger.warning("Token %s renewed, but the cache did not keep it", token.fingerprint)
        except CacheUnavailable as err:
            self._warn_cache(err)  # the token is good: keep it in this process at least
        self.store.clear_backoff()
        telemetry.record_token_renewal(self.config, token, origin=origin, duration=self.clock.now() - started)
        return token, RefreshOutcome.RENEWED

    def _backoff_delay(self, err: TokenError) -> float:
        failures = self.store.count_failure()
        delay = min(self.config.backoff_max, self.config.backoff_base * 2.0 ** max(0, failures - 1))
        delay *= 0.8 + 0.4 * random.random()  # noqa: S311  (jitter, not crypto)
        if err.retry_after is not None:
            delay = max(delay, float(err.retry_after))
        return delay

    def _without_cache(self, local: AccessToken | None, now: float) -> AccessToken:
        """The cache failed: this process keeps or fetches a token of its own."""
        if local is not None and (
            now < TokenTiming.of(local, self.config).lazy_renew_at or now < self._local_backoff_until
        ):
            self._remember(local, now)
            return local
        if now < self._local_backoff_until:
            raise TokenBackoff(
                "No valid token: the cache is unavailable and the last token request failed.",
                retry_after=self._local_backoff_until - now,
            )
        try:
            token = self._fetch("request")
        except TokenError as err:
            self._local_backoff_until = now + max(self.config.backoff_base, err.retry_after or 0.0)
            if local is not None:
                self._remember(local, now)
                return local
            raise
        self._remember(token, self.clock.now())
        return token

    def _warn_cache(self, err: CacheUnavailable) -> None:
        now = time.monotonic()
        if now - self._cache_warned_at > 30:
            self._cache_warned_at = now
            logger.warning("Token cache %r unavailable (%s); using a process-local token", self.config.cache_alias, err)

    def _fetch(self, origin: str) -> AccessToken:
        self.fetch_counts[origin] = self.fetch_counts.get(origin, 0) + 1
        token = self.endpoint.request_token()
        logger.info(
            "Token renewed by %s in pid %s: %s, expires in %.0f s",
            origin,
            os.getpid(),
            token.fingerprint,
            token.lifetime,
        )
        return token


# --- module API ----------------------------------------------------------------------------------

_managers: dict[int, tuple[Config, TokenManager]] = {}
_managers_lock = threading.Lock()


def get_token_manager(config: Config | None = None) -> TokenManager:
    """This process's manager for the configured credentials."""
    config = get_config() if config is None else config
    entry = _managers.get(id(config))
    if entry is not None and entry[0] is config:
        return entry[1]
    with _managers_lock:
        entry = _managers.get(id(config))
        if entry is None or entry[0] is not config:
            entry = (config, TokenManager(config))
            _managers[id(config)] = entry
        return entry[1]


def get_access_token() -> str:
    """A valid bearer token for the configured credentials, shared by the whole fleet."""
    return get_token_manager().get_token().value


def get_token() -> AccessToken:
    """Like :func:`get_access_token`, with the expiry and fingerprint."""
    return get_token_manager().get_token()


def refresh_if_due() -> RefreshOutcome:
    return get_token_manager().refresh_if_due()


def force_refresh(*, origin: str = "manual") -> AccessToken:
    return get_token_manager().force_refresh(origin=origin)


def invalidate(token_value: str) -> bool:
    return get_token_manager().invalidate(token_value)


def reset_process_state() -> None:
    """Forget every memoised token of this process (tests; after fork)."""
    global _managers_lock
    _managers.clear()
    _managers_lock = threading.Lock()


os.register_at_fork(after_in_child=reset_process_state)
