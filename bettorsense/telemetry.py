"""Fleet-wide telemetry of the token lifecycle, kept in the shared cache.

The token code records here what the health page and the status command show: the last renewal
(time, outcome, duration, who did it), the last error, the beat heartbeat and counters of token
requests. Recording is best effort: a cache failure never breaks a caller.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bettorsense.cache import BestEffortCache, cache_key, guard_cache, shared_cache
from bettorsense.conf import Config
from bettorsense.exceptions import InvalidInput, ProfileUnavailable
from bettorsense.registry import PerConfig

if TYPE_CHECKING:
    from bettorsense.exceptions import BettorSenseError
    from bettorsense.tokens.token import AccessToken

logger = logging.getLogger(__name__)

_MINUTE_TTL = 2 * 3600
_HOUR_TTL = 26 * 3600
#: The outcome of a success; a failure's outcome is its error class's name.
OUTCOME_OK = "ok"

_recorder = BestEffortCache("Telemetry", logger)


@dataclass(frozen=True)
class Renewal:
    at: float
    outcome: str  # OUTCOME_OK or the error class name
    origin: str  # beat, request, manual
    duration: float
    fingerprint: str | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.outcome == OUTCOME_OK


@dataclass(frozen=True)
class TokenState:
    last_renewal: Renewal | None
    last_error: Renewal | None
    beat_last_run: float | None
    beat_last_outcome: str | None
    requests_last_hour: int
    requests_last_day: int
    renewals_last_hour: int
    renewals_last_day: int


@dataclass(frozen=True)
class ApiCall:
    """The last call to the Bettor Sense API that some process of the fleet recorded."""

    at: float
    outcome: str  # OUTCOME_OK or the error class name
    status: int | None
    latency: float  # seconds, retries and the wait for a token included
    answered: bool  # the API answered as documented: a 200, or a 404 or 400 about the request itself


def _record(config: Config, name: str, value: Any, ttl: int) -> None:
    _recorder.set(config, cache_key(config, name), value, ttl)


def _count(config: Config, name: str, now: float) -> None:
    minute, hour = int(now // 60), int(now // 3600)
    _recorder.incr(config, cache_key(config, f"count:{name}:m{minute}"), _MINUTE_TTL)
    _recorder.incr(config, cache_key(config, f"count:{name}:h{hour}"), _HOUR_TTL)


def _renewal_record(renewal: Renewal) -> dict[str, Any]:
    return renewal.__dict__.copy()


def record_token_renewal(config: Config, token: AccessToken, *, origin: str, duration: float) -> None:
    now = time.time()
    renewal = Renewal(now, OUTCOME_OK, origin, duration, token.fingerprint, None)
    _record(config, "state:last_renewal", _renewal_record(renewal), _HOUR_TTL)
    _count(config, "requests", now)
    _count(config, "renewals", now)


def record_token_failure(config: Config, err: BettorSenseError, *, origin: str, duration: float) -> None:
    now = time.time()
    failure = Renewal(now, type(err).__name__, origin, duration, None, str(err)[:300])
    _record(config, "state:last_renewal", _renewal_record(failure), _HOUR_TTL)
    _record(config, "state:last_error", _renewal_record(failure), _HOUR_TTL)
    _count(config, "requests", now)


def record_beat_tick(config: Config, outcome: str) -> None:
    _record(config, "state:beat", {"at": time.time(), "outcome": outcome, "pid": os.getpid()}, _HOUR_TTL)


def _renewal(data: Any) -> Renewal | None:
    if not isinstance(data, dict):
        return None
    try:
        return Renewal(**data)
    except TypeError:
        return None


def read_token_state(config: Config) -> TokenState:
    """What the fleet recorded; raises CacheUnavailable if the cache cannot be read."""
    cache = shared_cache(config)
    now = time.time()
    minute, hour = int(now // 60), int(now // 3600)
    minute_keys = {
        name: [cache_key(config, f"count:{name}:m{m}") for m in range(minute - 59, minute + 1)]
        for name in ("requests", "renewals")
    }
    hour_keys = {
        name: [cache_key(config, f"count:{name}:h{h}") for h in range(hour - 23, hour + 1)]
        for name in ("requests", "renewals")
    }
    names = ["state:last_renewal", "state:last_error", "state:beat"]
    with guard_cache():
        values = cache.get_many(
            [cache_key(config, n) for n in names]
            + [k for keys in minute_keys.values() for k in keys]
            + [k for keys in hour_keys.values() for k in keys]
        )

    def total(keys: list[str]) -> int:
        return sum(int(values.get(k) or 0) for k in keys)

    beat = values.get(cache_key(config, "state:beat"))
    return TokenState(
        last_renewal=_renewal(values.get(cache_key(config, "state:last_renewal"))),
        last_error=_renewal(values.get(cache_key(config, "state:last_error"))),
        beat_last_run=float(beat["at"]) if isinstance(beat, dict) else None,
        beat_last_outcome=str(beat["outcome"]) if isinstance(beat, dict) else None,
        requests_last_hour=total(minute_keys["requests"]),
        requests_last_day=total(hour_keys["requests"]),
        renewals_last_hour=total(minute_keys["renewals"]),
        renewals_last_day=total(hour_keys["renewals"]),
    )


# --- the last API call: on the hot path, so written at most once a second per process -----------

_API_WRITE_EVERY = 1.0


class ApiCallThrottle:
    """Whether this process may write the last-API-call record of one config now."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._quiet_until = 0.0
        self._answered: bool | None = None

    def due(self, answered: bool) -> bool:
        """True once a second, or at once when the outcome flips between answered and failing."""
        # Unlocked, as it is on every API call: a race between threads costs one extra write at most.
        now = self.clock()
        if self._answered is answered and now < self._quiet_until:
            return False
        self._quiet_until, self._answered = now + _API_WRITE_EVERY, answered
        return True


_api_throttles: PerConfig[ApiCallThrottle] = PerConfig(lambda config: ApiCallThrottle())


def api_call_throttle(config: Config) -> ApiCallThrottle:
    return _api_throttles.get(config)


def record_api_call(config: Config, error: BettorSenseError | None, latency: float) -> None:
    """Remember the outcome and latency of an API call for the fleet.

    Cheap by design: a clock read and a registry look-up, and a cache write at most once a second
    per process, or at once when the call's outcome flips between answered and failing.
    """
    answered = error is None or isinstance(error, ProfileUnavailable | InvalidInput)
    if not _api_throttles.get(config).due(answered):
        return
    record = {
        "at": time.time(),
        "outcome": OUTCOME_OK if error is None else type(error).__name__,
        "status": 200 if error is None else error.status_code,
        "latency": latency,
        "answered": answered,
    }
    _record(config, "state:last_api_call", record, _HOUR_TTL)


def read_api_call(config: Config) -> ApiCall | None:
    """The last API call the fleet recorded; raises CacheUnavailable if the cache cannot be read."""
    with guard_cache():
        data = shared_cache(config).get(cache_key(config, "state:last_api_call"))
    if not isinstance(data, dict):
        return None
    try:
        return ApiCall(**data)
    except TypeError:
        return None
