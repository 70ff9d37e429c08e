"""A circuit breaker whose state lives in the shared cache, so the whole fleet opens it together.

After ``BREAKER_THRESHOLD`` consecutive failures (5xx after retries, timeouts, refused
connections) calls fail fast with :class:`ServiceUnavailable` for ``BREAKER_COOLDOWN`` seconds, so
an outage at Sportradar does not tie up every web worker. After the cool-down one call in the
fleet is let through as a probe: its success closes the breaker, its failure opens it again.

Each process re-reads the shared state at most once a second, so a healthy call costs no cache
round trip.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from typing import Any

from django.core.cache import caches

from bettorsense.cache import CacheUnavailable, cache_key, guard_cache
from bettorsense.conf import Config
from bettorsense.exceptions import ServiceUnavailable

logger = logging.getLogger(__name__)

_RECHECK = 1.0


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.open_key = cache_key(config, "breaker:open")
        self.failures_key = cache_key(config, "breaker:failures")
        self.probe_key = cache_key(config, "breaker:probe")
        self._checked_until = 0.0
        self._open_until: float | None = None
        self._fleet_failures = 0
        self._local = threading.local()

    def _read(self, now: float) -> None:
        try:
            with guard_cache():
                values = caches[self.config.cache_alias].get_many([self.open_key, self.failures_key])
        except CacheUnavailable:
            values = {}  # without the cache, each process decides alone
        opened: Any = values.get(self.open_key)
        self._open_until = float(opened["until"]) if isinstance(opened, dict) else None
        self._fleet_failures = int(values.get(self.failures_key) or 0)
        self._checked_until = now + _RECHECK

    def state(self) -> BreakerState:
        now = time.time()
        self._read(now)
        if self._open_until is None:
            return BreakerState.CLOSED
        return BreakerState.OPEN if now < self._open_until else BreakerState.HALF_OPEN

    def before_call(self) -> None:
        """Raise ServiceUnavailable while the breaker is open; let one probe through after the cool-down."""
        self._local.probing = False
        now = time.time()
        if now >= self._checked_until:
            self._read(now)
        if self._open_until is None:
            return
        if now < self._open_until:
            raise ServiceUnavailable(
                "The circuit breaker is open after repeated failures of the Bettor Sense API.",
                retry_after=round(self._open_until - now, 1),
            )
        try:
            with guard_cache():
                probe = caches[self.config.cache_alias].add(self.probe_key, os.getpid(), int(self._probe_ttl()))
        except CacheUnavailable:
            probe = True
        if not probe:
            raise ServiceUnavailable("The circuit breaker is half-open and another call is probing the API.")
        self._local.probing = True

    def _probe_ttl(self) -> float:
        return self.config.retry_budget + self.config.read_timeout + 5

    def record_success(self) -> None:
        if not (getattr(self._local, "probing", False) or self._fleet_failures or self._open_until is not None):
            return
        try:
            with guard_cache():
                caches[self.config.cache_alias].delete_many([self.open_key, self.failures_key, self.probe_key])
        except CacheUnavailable:
            pass
        if self._open_until is not None:
            logger.info("Circuit breaker closed: the Bettor Sense API answered again")
        self._open_until, self._fleet_failures, self._local.probing = None, 0, False

    def record_failure(self) -> None:
        now = time.time()
        probing = getattr(self._local, "probing", False)
        cache = caches[self.config.cache_alias]
        try:
            with guard_cache():
                cache.add(self.failures_key, 0, int(self.config.breaker_cooldown * 10) + 1)
                failures = int(cache.incr(self.failures_key))
        except (CacheUnavailable, ValueError):
            failures = self._fleet_failures + 1
        self._fleet_failures = failures
        if not probing and failures < self.config.breaker_threshold:
            return
        until = now + self.config.breaker_cooldown
        try:
            with guard_cache():
                ttl = int(self.config.breaker_cooldown) + 3600  # outlives the cool-down: half-open until a probe
                cache.set(self.open_key, {"until": until, "failures": failures}, ttl)
                cache.delete(self.probe_key)
        except CacheUnavailable:
            pass
        self._open_until, self._checked_until, self._local.probing = until, now + _RECHECK, False
        logger.warning(
            "Circuit breaker opened for %.0f s after %d consecutive API failures",
            self.config.breaker_cooldown,
            failures,
        )


_breakers: dict[int, tuple[Config, CircuitBreaker]] = {}


def get_breaker(config: Config) -> CircuitBreaker:
    entry = _breakers.get(id(config))
    if entry is None or entry[0] is not config:
        entry = (config, CircuitBreaker(config))
        _breakers[id(config)] = entry
    return entry[1]


def reset_process_state() -> None:
    _breakers.clear()


os.register_at_fork(after_in_child=reset_process_state)
