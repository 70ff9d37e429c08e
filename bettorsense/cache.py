"""The one way the app talks to the shared Django cache.

Every entry the fleet shares (the token, its renewal lock and backoff, the breaker, telemetry, the
profile cache, the sync lock) lives under ``<KEY_PREFIX>:<credentials identity>:<name>`` for the
``default`` credential set and ``<KEY_PREFIX>:<set>:<credentials identity>:<name>`` for a named
one; the identity hashes the token URL, the audience and the client id, so nothing is shared across
credential sets or environments (and the default set's keys are those of a single-set deployment).

Two kinds of access:

* :func:`guard_cache` turns any backend failure into :class:`CacheUnavailable`, for callers that
  must know (the token manager falls back to a process-local token).
* :class:`BestEffortCache` reads and writes for callers that must not care: a failure is a miss or
  a lost write, and one rate-limited warning per component and process says so.

django-redis with ``IGNORE_EXCEPTIONS: True`` turns every Redis failure into a miss (``None``, or
``False`` for ``add``): the renewal lock then looks taken for ever while the token reads as absent.
:func:`shared_cache` therefore answers through django-redis' client, below the layer that swallows
the errors, so an outage still raises here and the token manager falls back as it should.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from django.core.cache import BaseCache, caches

if TYPE_CHECKING:
    from bettorsense.conf import Config

logger = logging.getLogger(__name__)

#: While the cache is down every call fails to read and write it: say so at most this often.
WARN_EVERY = 30.0
#: Lifetime of the health snapshot's round-trip entry.
ROUND_TRIP_TTL = 10


class CacheUnavailable(Exception):
    """The cache backend raised; the message names the error class only."""


def cache_key(config: Config, name: str) -> str:
    if config.is_default_client:
        return f"{config.key_prefix}:{config.credentials_identity}:{name}"
    return f"{config.key_prefix}:{config.client}:{config.credentials_identity}:{name}"


def ttl_seconds(seconds: float) -> int:
    """A cache timeout in whole seconds, never zero (zero means "do not cache" to Django)."""
    return max(1, math.ceil(seconds))


def ttl_past(seconds: float) -> int:
    """A timeout for an entry whose value holds its own deadline, ``seconds`` from now: a second more.

    Django's database cache stores expiry in whole seconds, cut down, so ``ceil(seconds)`` alone can
    drop the entry up to a second early (a 1 s backoff at once). The deadline in the value, not the
    cache, says when the entry is over.
    """
    return ttl_seconds(seconds) + 1


def shared_cache(config: Config, alias: str | None = None) -> BaseCache:
    """The cache of ``alias`` (the token cache's by default), raising on a backend failure."""
    return raising(caches[config.cache_alias if alias is None else alias])


def raising(cache: BaseCache) -> BaseCache:
    """``cache``, or for django-redis with IGNORE_EXCEPTIONS a view on it that still raises."""
    if getattr(cache, "_ignore_exceptions", False) and hasattr(cache, "client"):
        return cast(BaseCache, RaisingView(cache))
    return cache


class RaisingView:
    """django-redis' cache through its client: the same calls, the same keys, and its errors raised.

    The client's methods take the cache's arguments (and make the versioned key the same way);
    anything the client lacks (``make_and_validate_key``...) is the cache's own.
    """

    def __init__(self, backend: BaseCache) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        client = self.backend.client  # type: ignore[attr-defined]
        found = getattr(client, name, None)
        return found if callable(found) else getattr(self.backend, name)

    def __repr__(self) -> str:
        return f"<RaisingView of {type(self.backend).__name__}>"


def confirm_round_trip(config: Config) -> None:
    """Write a nonce and read it back: CacheUnavailable if the cache does not keep it.

    A cache client that swallows its errors answers every read with a miss and every write with
    silence; only a value written and not read back tells that apart from an empty cache.
    """
    key = cache_key(config, "health:round-trip")
    nonce = uuid.uuid4().hex
    with guard_cache():
        cache = shared_cache(config)
        cache.set(key, nonce, ROUND_TRIP_TTL)
        kept = cache.get(key) == nonce
    if not kept:
        raise CacheUnavailable("the cache did not keep a value written to it (is it failing silently?)")


def backend_of(cache: BaseCache) -> BaseCache:
    """The backend object behind :func:`raising`'s view."""
    return cache.backend if isinstance(cache, RaisingView) else cache


@contextmanager
def guard_cache() -> Iterator[None]:
    try:
        yield
    except CacheUnavailable:
        raise
    except Exception as err:
        raise CacheUnavailable(f"{type(err).__name__}: {str(err)[:160]}") from err


class RateLimitedWarning:
    """A warning logged at most once every ``every`` seconds per process; the rest go to debug."""

    def __init__(
        self, log: logging.Logger, every: float = WARN_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = log
        self._every = every
        self.clock = clock
        self._said_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self, message: str, *args: object) -> None:
        now = self.clock()
        with self._lock:
            quiet = self._said_at is not None and now - self._said_at < self._every
            if not quiet:
                self._said_at = now
        if quiet:
            self._log.debug(message, *args)
        else:
            self._log.warning(message + " (said at most every %.0f s per process)", *args, self._every)

    def reset(self) -> None:
        with self._lock:
            self._said_at = None


class BestEffortCache:
    """Reads that miss and writes that drop when the cache fails, with one rate-limited warning."""

    def __init__(
        self, component: str, log: logging.Logger = logger, alias: Callable[[Config], str] | None = None
    ) -> None:
        self.component = component
        self.warn = RateLimitedWarning(log)
        #: Which cache of ``settings.CACHES`` the component uses: the token cache's unless told.
        self.alias: Callable[[Config], str] = alias or (lambda config: config.cache_alias)

    def _failed(self, config: Config, err: CacheUnavailable, outcome: str) -> None:
        self.warn("%s: cache %r unavailable (%s); %s", self.component, self.alias(config), err, outcome)

    def get(self, config: Config, key: str, default: Any = None) -> Any:
        try:
            with guard_cache():
                return shared_cache(config, self.alias(config)).get(key, default)
        except CacheUnavailable as err:
            self._failed(config, err, "treated as a miss")
            return default

    def get_many(self, config: Config, keys: Iterable[str]) -> dict[str, Any]:
        try:
            with guard_cache():
                return dict(shared_cache(config, self.alias(config)).get_many(list(keys)))
        except CacheUnavailable as err:
            self._failed(config, err, "treated as misses")
            return {}

    def set(self, config: Config, key: str, value: Any, ttl: float) -> bool:
        try:
            with guard_cache():
                shared_cache(config, self.alias(config)).set(key, value, ttl_seconds(ttl))
        except CacheUnavailable as err:
            self._failed(config, err, "not written")
            return False
        return True

    def add(self, config: Config, key: str, value: Any, ttl: float, *, on_failure: bool) -> bool:
        """``cache.add``: True if the key was free and is now ours; ``on_failure`` if the cache failed."""
        try:
            with guard_cache():
                return bool(shared_cache(config, self.alias(config)).add(key, value, ttl_seconds(ttl)))
        except CacheUnavailable as err:
            self._failed(config, err, "not added")
            return on_failure

    def incr(self, config: Config, key: str, ttl: float) -> int | None:
        """Count one more under ``key`` (created at 1 with ``ttl``); the new count, None if the cache failed."""
        try:
            with guard_cache():
                cache = shared_cache(config, self.alias(config))
                if cache.add(key, 1, ttl_seconds(ttl)):
                    return 1
                return int(cache.incr(key))
        except CacheUnavailable as err:
            self._failed(config, err, "not counted")
            return None

    def delete(self, config: Config, *keys: str) -> None:
        try:
            with guard_cache():
                shared_cache(config, self.alias(config)).delete_many(list(keys))
        except CacheUnavailable as err:
            self._failed(config, err, "not deleted")
