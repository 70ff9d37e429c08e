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
from collections.abc import Callable
from typing import Any

from bettorsense.cache import BestEffortCache, cache_key
from bettorsense.conf import Config
from bettorsense.exceptions import ServiceUnavailable
from bettorsense.registry import PerConfig

logger = logging.getLogger(__name__)

_RECHECK = 1.0
#: Without the cache each process decides alone: reads miss, and the probe is this process's own.
_shared = BestEffortCache("Circuit breaker", logger)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        #: Wall-clock time: the cool-down's end is shared with the fleet's other hosts.
        self.clock = clock
        self.open_key = cache_key(config, "breaker:open")
        self.failures_key = cache_key(config, "breaker:failures")
        self.probe_key = cache_key(config, "breaker:probe")
        self._checked_until = 0.0
        self._open_until: float | None = None
        self._fleet_failures = 0
        self._local = threading.local()

    def _read(self, now: float) -> None:
        values = _shared.get_many(self.config, [self.open_key, self.failures_key])
        opened: Any = values.get(self.open_key)
        self._open_until = float(opened["until"]) if isinstance(opened, dict) else None
        self._fleet_failures = int(values.get(self.failures_key) or 0)
        self._checked_until = now + _RECHECK

    def state(self) -> BreakerState:
        now = self.clock()
        self._read(now)
        if self._open_until is None:
            return BreakerState.CLOSED
        return BreakerState.OPEN if now < self._open_until else BreakerState.HALF_OPEN

    def before_call(self) -> None:
        """Raise ServiceUnavailable while the breaker is open; let one probe through after the cool-down."""
        self._local.probing = False
        now = self.clock()
        if now >= self._checked_until:
            self._read(now)
        if self._open_until is None:
            return
        if now < self._open_until:
            raise ServiceUnavailable(
                "The circuit breaker is open after repeated failures of the Bettor Sense API.",
                retry_after=round(self._open_until - now, 1),
            )
        probe = _shared.add(self.config, self.probe_key, os.getpid(), self._probe_ttl(), on_failure=True)
        if not probe:
            raise ServiceUnavailable("The circuit breaker is half-open and another call is probing the API.")
        self._local.probing = True

    def _probe_ttl(self) -> float:
        return self.config.retry_budget + self.config.read_timeout + 5

    def record_success(self) -> None:
        if not (getattr(self._local, "probing", False) or self._fleet_failures or self._open_until is not None):
            return
        _shared.delete(self.config, self.open_key, self.failures_key, self.probe_key)
        if self._open_until is not None:
            logger.info("Circuit breaker closed: the Bettor Sense API answered again")
        self._open_until, self._fleet_failures, self._local.probing = None, 0, False

    def record_failure(self) -> None:
        now = self.clock()
        probing = getattr(self._local, "probing", False)
        counted = _shared.incr(self.config, self.failures_key, self.config.breaker_cooldown * 10 + 1)
        failures = self._fleet_failures + 1 if counted is None else counted
        self._fleet_failures = failures
        if not probing and failures < self.config.breaker_threshold:
            return
        until = now + self.config.breaker_cooldown
        ttl = self.config.breaker_cooldown + 3600  # outlives the cool-down: half-open until a probe
        if _shared.set(self.config, self.open_key, {"until": until, "failures": failures}, ttl):
            _shared.delete(self.config, self.probe_key)
        self._open_until, self._checked_until, self._local.probing = until, now + _RECHECK, False
        logger.warning(
            "Circuit breaker opened for %.0f s after %d consecutive API failures",
            self.config.breaker_cooldown,
            failures,
        )


_breakers: PerConfig[CircuitBreaker] = PerConfig(CircuitBreaker)


def get_breaker(config: Config) -> CircuitBreaker:
    return _breakers.get(config)


def reset_process_state() -> None:
    """Forget this process's breakers (tests); a forked child forgets them through the registry."""
    _breakers.clear()
