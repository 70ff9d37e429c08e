"""A circuit breaker whose state lives in the shared cache, so the whole fleet opens it together.

After ``BREAKER_THRESHOLD`` consecutive failures (5xx after retries, timeouts, refused
connections) calls fail fast with :class:`ServiceUnavailable` for ``BREAKER_COOLDOWN`` seconds, so
an outage at Sportradar does not tie up every web worker. After the cool-down one call in the
fleet is let through as a probe: its success closes the breaker, its failure opens it again.

Each process re-reads the shared state at most once a second, so a healthy call costs no cache
round trip. The open state and the probe are sealed entries (:mod:`bettorsense.sealing`) whose
deadlines are read no later than now plus ``BREAKER_COOLDOWN`` (the open state) or the probe's
own lifetime, so no entry, foreign or from a host whose clock is ahead, keeps the breaker shut.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from bettorsense import entries
from bettorsense.cache import BestEffortCache, cache_key, shared_cache
from bettorsense.conf import Config
from bettorsense.exceptions import ServiceUnavailable
from bettorsense.registry import PerConfig
from bettorsense.sealing import seal

logger = logging.getLogger(__name__)

_RECHECK = 1.0
OPEN_KIND = "breaker open"
PROBE_KIND = "breaker probe"
FAILURES_KIND = "breaker failures"
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
        cache = shared_cache(self.config)
        until = entries.read_sealed(
            self.config, cache, values.get(self.open_key), key=self.open_key, kind=OPEN_KIND, parse=_until
        )
        failures = entries.read_count(cache, values.get(self.failures_key), key=self.failures_key, kind=FAILURES_KIND)
        self._fleet_failures = failures or 0
        self._checked_until = now + _RECHECK
        if until is not None and until > now + self.config.breaker_cooldown:
            # Written by a host whose clock is ahead, or under a longer cool-down: shorten it for the
            # fleet, or each read would cap it anew and keep it open until the entry expires.
            until = now + self.config.breaker_cooldown
            self._publish_open(until, self._fleet_failures)
        self._open_until = until

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
        if not self._take_probe(now):
            raise ServiceUnavailable("The circuit breaker is half-open and another call is probing the API.")
        self._local.probing = True

    def _probe_ttl(self) -> float:
        return self.config.retry_budget + self.config.read_timeout + 5

    def _take_probe(self, now: float) -> bool:
        """Whether this call is the fleet's probe; a probe entry past its deadline or malformed is taken over."""
        ttl = self._probe_ttl()
        probe = seal(self.config, {"until": now + ttl, "pid": os.getpid()}, key=self.probe_key, kind=PROBE_KIND)
        if _shared.add(self.config, self.probe_key, probe, ttl, on_failure=True):
            return True
        held = _shared.get(self.config, self.probe_key)
        until = entries.read_sealed(
            self.config, shared_cache(self.config), held, key=self.probe_key, kind=PROBE_KIND, parse=_until
        )
        if until is not None and now < min(until, now + ttl):
            return False
        if until is not None:
            _shared.delete(self.config, self.probe_key)  # over: its holder is gone (read_sealed removed a bad one)
        return _shared.add(self.config, self.probe_key, probe, ttl, on_failure=True)

    def record_success(self) -> None:
        if not (getattr(self._local, "probing", False) or self._fleet_failures or self._open_until is not None):
            return
        _shared.delete(self.config, self.open_key, self.failures_key, self.probe_key)
        if self._open_until is not None:
            logger.info("Circuit breaker closed: the Bettor Sense API answered again")
        self._open_until, self._fleet_failures, self._local.probing = None, 0, False

    def _publish_open(self, until: float, failures: int) -> bool:
        ttl = self.config.breaker_cooldown + 3600  # outlives the cool-down: half-open until a probe
        opened = seal(self.config, {"until": until, "failures": failures}, key=self.open_key, kind=OPEN_KIND)
        return _shared.set(self.config, self.open_key, opened, ttl)

    def record_failure(self) -> None:
        now = self.clock()
        probing = getattr(self._local, "probing", False)
        counted = _shared.incr(self.config, self.failures_key, self.config.breaker_cooldown * 10 + 1)
        failures = self._fleet_failures + 1 if counted is None else counted
        self._fleet_failures = failures
        if not probing and failures < self.config.breaker_threshold:
            return
        until = now + self.config.breaker_cooldown
        if self._publish_open(until, failures):
            _shared.delete(self.config, self.probe_key)
        self._open_until, self._checked_until, self._local.probing = until, now + _RECHECK, False
        logger.warning(
            "Circuit breaker opened for %.0f s after %d consecutive API failures",
            self.config.breaker_cooldown,
            failures,
        )


def _until(data: dict[str, Any]) -> float:
    return entries.number(data, "until", low=0.0)


_breakers: PerConfig[CircuitBreaker] = PerConfig(CircuitBreaker)


def get_breaker(config: Config) -> CircuitBreaker:
    return _breakers.get(config)


def reset_process_state() -> None:
    """Forget this process's breakers (tests); a forked child forgets them through the registry."""
    _breakers.clear()
