"""Fleet-wide telemetry of the token lifecycle, kept in the shared cache.

The token code records here what the health page and the status command show: the last renewal
(time, outcome, duration, who did it), the last error, the beat heartbeat and counters of token
requests. Recording is best effort: a cache failure never breaks a caller.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bettorsense.cache import CacheUnavailable, cache_key, guard_cache
from bettorsense.conf import Config
from bettorsense.exceptions import InvalidInput, ProfileUnavailable

if TYPE_CHECKING:
    from bettorsense.exceptions import BettorSenseError
    from bettorsense.tokens.token import AccessToken

logger = logging.getLogger(__name__)

_MINUTE_TTL = 2 * 3600
_HOUR_TTL = 26 * 3600


@dataclass(frozen=True)
class Renewal:
    at: float
    outcome: str  # "ok" or the error class name
    origin: str  # beat, request, manual
    duration: float
    fingerprint: str | None
    error: str | None


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
    outcome: str  # "ok" or the error class name
    status: int | None
    latency: float  # seconds, retries and the wait for a token included
    answered: bool  # the API answered as documented: a 200, or a 404 or 400 about the request itself


def _cache_set(config: Config, name: str, value: Any, ttl: int) -> None:
    from django.core.cache import caches

    try:
        with guard_cache():
            caches[config.cache_alias].set(cache_key(config, name), value, ttl)
    except CacheUnavailable as err:
        logger.debug("Could not record %s: %s", name, err)


def _count(config: Config, name: str, now: float) -> None:
    from django.core.cache import caches

    cache = caches[config.cache_alias]
    minute, hour = int(now // 60), int(now // 3600)
    try:
        with guard_cache():
            for key, ttl in (
                (cache_key(config, f"count:{name}:m{minute}"), _MINUTE_TTL),
                (cache_key(config, f"count:{name}:h{hour}"), _HOUR_TTL),
            ):
                if not cache.add(key, 1, ttl):
                    cache.incr(key)
    except (CacheUnavailable, ValueError) as err:
        logger.debug("Could not count %s: %s", name, err)


def _renewal_record(renewal: Renewal) -> dict[str, Any]:
    return renewal.__dict__.copy()


def record_token_renewal(config: Config, token: AccessToken, *, origin: str, duration: float) -> None:
    now = time.time()
    renewal = Renewal(now, "ok", origin, duration, token.fingerprint, None)
    _cache_set(config, "state:last_renewal", _renewal_record(renewal), _HOUR_TTL)
    _count(config, "requests", now)
    _count(config, "renewals", now)


def record_token_failure(config: Config, err: BettorSenseError, *, origin: str, duration: float) -> None:
    now = time.time()
    failure = Renewal(now, type(err).__name__, origin, duration, None, str(err)[:300])
    _cache_set(config, "state:last_renewal", _renewal_record(failure), _HOUR_TTL)
    _cache_set(config, "state:last_error", _renewal_record(failure), _HOUR_TTL)
    _count(config, "requests", now)


def record_beat_tick(config: Config, outcome: str) -> None:
    _cache_set(config, "state:beat", {"at": time.time(), "outcome": outcome, "pid": os.getpid()}, _HOUR_TTL)


def _renewal(data: Any) -> Renewal | None:
    if not isinstance(data, dict):
        return None
    try:
        return Renewal(**data)
    except TypeError:
        return None


def read_token_state(config: Config) -> TokenState:
    """What the fleet recorded; raises CacheUnavailable if the cache cannot be read."""
    from django.core.cache import caches

    cache = caches[config.cache_alias]
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
_clock = time.monotonic  # tests replace it
#: Per config (by id): the config itself, when this process may write again, what it last wrote.
_api_written: dict[int, tuple[Config, float, bool]] = {}


def record_api_call(config: Config, error: BettorSenseError | None, latency: float) -> None:
    """Remember the outcome and latency of an API call for the fleet.

    Cheap by design: a clock read and a dict look-up, and a cache write at most once a second per
    process, or at once when the call's outcome flips between answered and failing.
    """
    answered = error is None or isinstance(error, ProfileUnavailable | InvalidInput)
    now = _clock()
    last = _api_written.get(id(config))
    if last is not None and last[0] is config and now < last[1] and last[2] is answered:
        return
    _api_written[id(config)] = (config, now + _API_WRITE_EVERY, answered)
    record = {
        "at": time.time(),
        "outcome": "ok" if error is None else type(error).__name__,
        "status": 200 if error is None else error.status_code,
        "latency": latency,
        "answered": answered,
    }
    _cache_set(config, "state:last_api_call", record, _HOUR_TTL)


def read_api_call(config: Config) -> ApiCall | None:
    """The last API call the fleet recorded; raises CacheUnavailable if the cache cannot be read."""
    from django.core.cache import caches

    with guard_cache():
        data = caches[config.cache_alias].get(cache_key(config, "state:last_api_call"))
    if not isinstance(data, dict):
        return None
    try:
        return ApiCall(**data)
    except TypeError:
        return None


os.register_at_fork(after_in_child=_api_written.clear)
