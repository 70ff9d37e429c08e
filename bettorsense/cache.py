"""The one way the app talks to the shared Django cache.

Every entry the fleet shares (the token, its renewal lock and backoff, the breaker, telemetry, the
profile cache, the sync lock) lives under ``<KEY_PREFIX>:<credentials identity>:<name>``; the
identity hashes the token URL, the audience and the client id, so nothing is shared across
credential sets or environments.

Two kinds of access:

* :func:`guard_cache` turns any backend failure into :class:`CacheUnavailable`, for callers that
  must know (the token manager falls back to a process-local token).
* :class:`BestEffortCache` reads and writes for callers that must not care: a failure is a miss or
  a lost write, and one rate-limited warning per component and process says so.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.core.cache import BaseCache, caches

if TYPE_CHECKING:
    from bettorsense.conf import Config

logger = logging.getLogger(__name__)

#: While the cache is down every call fails to read and write it: say so at most this often.
WARN_EVERY = 30.0


class CacheUnavailable(Exception):
    """The cache backend raised; the message names the error class only."""


def cache_key(config: Config, name: str) -> str:
    return f"{config.key_prefix}:{config.credentials_identity}:{name}"


def ttl_seconds(seconds: float) -> int:
    """A cache timeout in whole seconds, never zero (zero means "do not cache" to Django)."""
    return max(1, math.ceil(seconds))


def shared_cache(config: Config) -> BaseCache:
    return caches[config.cache_alias]


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

    def __init__(self, component: str, log: logging.Logger = logger) -> None:
        self.component = component
        self.warn = RateLimitedWarning(log)

    def _failed(self, config: Config, err: CacheUnavailable, outcome: str) -> None:
        self.warn("%s: cache %r unavailable (%s); %s", self.component, config.cache_alias, err, outcome)

    def get(self, config: Config, key: str, default: Any = None) -> Any:
        try:
            with guard_cache():
                return shared_cache(config).get(key, default)
        except CacheUnavailable as err:
            self._failed(config, err, "treated as a miss")
            return default

    def get_many(self, config: Config, keys: Iterable[str]) -> dict[str, Any]:
        try:
            with guard_cache():
                return dict(shared_cache(config).get_many(list(keys)))
        except CacheUnavailable as err:
            self._failed(config, err, "treated as misses")
            return {}

    def set(self, config: Config, key: str, value: Any, ttl: float) -> bool:
        try:
            with guard_cache():
                shared_cache(config).set(key, value, ttl_seconds(ttl))
        except CacheUnavailable as err:
            self._failed(config, err, "not written")
            return False
        return True

    def add(self, config: Config, key: str, value: Any, ttl: float, *, on_failure: bool) -> bool:
        """``cache.add``: True if the key was free and is now ours; ``on_failure`` if the cache failed."""
        try:
            with guard_cache():
                return bool(shared_cache(config).add(key, value, ttl_seconds(ttl)))
        except CacheUnavailable as err:
            self._failed(config, err, "not added")
            return on_failure

    def incr(self, config: Config, key: str, ttl: float) -> int | None:
        """Count one more under ``key`` (created at 1 with ``ttl``); the new count, None if the cache failed."""
        try:
            with guard_cache():
                cache = shared_cache(config)
                if cache.add(key, 1, ttl_seconds(ttl)):
                    return 1
                return int(cache.incr(key))
        except CacheUnavailable as err:
            self._failed(config, err, "not counted")
            return None

    def delete(self, config: Config, *keys: str) -> None:
        try:
            with guard_cache():
                shared_cache(config).delete_many(list(keys))
        except CacheUnavailable as err:
            self._failed(config, err, "not deleted")
