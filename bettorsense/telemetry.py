"""Fleet-wide telemetry of the token lifecycle, kept in the shared cache.

The token code records here what the health page and the status command show: the last renewal
(time, outcome, duration, who did it), the last error, the beat heartbeat and counters of token
requests, and each process's clock offset to the token server. Recording is best effort: a cache
failure never breaks a caller. The records are sealed entries (:mod:`bettorsense.sealing`) and the
counters plain integers (``cache.incr`` needs them), each checked on read: a malformed one is
absent, removed and logged once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bettorsense import entries
from bettorsense.cache import BestEffortCache, cache_key, guard_cache, shared_cache
from bettorsense.conf import Config
from bettorsense.exceptions import InvalidInput, ProfileUnavailable
from bettorsense.registry import PerConfig
from bettorsense.sealing import seal
from bettorsense.text import shorten

if TYPE_CHECKING:
    from bettorsense.exceptions import BettorSenseError
    from bettorsense.tokens.clock import OffsetEstimate
    from bettorsense.tokens.token import AccessToken

logger = logging.getLogger(__name__)

T = TypeVar("T")

_MINUTE_TTL = 2 * 3600
_HOUR_TTL = 26 * 3600
_KIND = "telemetry"
_MAX_NAME = 100
_MAX_SECONDS = 86400.0 * 366
#: How much of an error's text is kept: its message, the vendor's words, the hint.
ERROR_LENGTH = 600
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


def server_now(config: Config) -> float:
    """Now on the token server's clock, as this process estimates it: every instant the fleet shares is."""
    from bettorsense.tokens.manager import get_token_manager  # it records here: imported when first asked

    return get_token_manager(config).clock.now()


def _record(config: Config, name: str, value: dict[str, Any], ttl: int) -> None:
    key = cache_key(config, name)
    try:
        sealed = seal(config, value, key=key, kind=_KIND)
    except ValueError:  # a NaN latency or duration: not recorded
        return
    _recorder.set(config, key, sealed, ttl)


def _open(config: Config, values: dict[str, Any], name: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
    key = cache_key(config, name)
    return entries.read_sealed(config, shared_cache(config), values.get(key), key=key, kind=_KIND, parse=parse)


def _count(config: Config, name: str, now: float) -> None:
    minute, hour = int(now // 60), int(now // 3600)
    _recorder.incr(config, cache_key(config, f"count:{name}:m{minute}"), _MINUTE_TTL)
    _recorder.incr(config, cache_key(config, f"count:{name}:h{hour}"), _HOUR_TTL)


def _renewal_record(renewal: Renewal) -> dict[str, Any]:
    return renewal.__dict__.copy()


def record_token_renewal(config: Config, token: AccessToken, *, origin: str, duration: float) -> None:
    now = server_now(config)
    renewal = Renewal(now, OUTCOME_OK, origin, duration, token.fingerprint, None)
    _record(config, "state:last_renewal", _renewal_record(renewal), _HOUR_TTL)
    _count(config, "requests", now)
    _count(config, "renewals", now)


def record_token_failure(config: Config, err: BettorSenseError, *, origin: str, duration: float) -> None:
    now = server_now(config)
    failure = Renewal(now, type(err).__name__, origin, duration, None, shorten(str(err), ERROR_LENGTH))
    _record(config, "state:last_renewal", _renewal_record(failure), _HOUR_TTL)
    _record(config, "state:last_error", _renewal_record(failure), _HOUR_TTL)
    _count(config, "requests", now)


def record_beat_tick(config: Config, outcome: str) -> None:
    _record(config, "state:beat", {"at": server_now(config), "outcome": outcome, "pid": os.getpid()}, _HOUR_TTL)


def _renewal(data: dict[str, Any]) -> Renewal:
    return Renewal(
        at=entries.number(data, "at", low=0.0),
        outcome=entries.text(data, "outcome", max_length=_MAX_NAME),
        origin=entries.text(data, "origin", max_length=_MAX_NAME),
        duration=entries.number(data, "duration", low=0.0, high=_MAX_SECONDS),
        fingerprint=entries.optional_text(data, "fingerprint", max_length=_MAX_NAME),
        error=entries.optional_text(data, "error", max_length=ERROR_LENGTH),
    )


def _beat(data: dict[str, Any]) -> tuple[float, str]:
    return entries.number(data, "at", low=0.0), entries.text(data, "outcome", max_length=_MAX_NAME)


def _api_call(data: dict[str, Any]) -> ApiCall:
    status = data.get("status")
    return ApiCall(
        at=entries.number(data, "at", low=0.0),
        outcome=entries.text(data, "outcome", max_length=_MAX_NAME),
        status=None if status is None else entries.whole(data, "status", low=100, high=599),
        latency=entries.number(data, "latency", low=0.0, high=_MAX_SECONDS),
        answered=entries.flag(data, "answered"),
    )


def read_token_state(config: Config) -> TokenState:
    """What the fleet recorded; raises CacheUnavailable if the cache cannot be read."""
    cache = shared_cache(config)
    now = server_now(config)
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
        return sum(entries.read_count(cache, values.get(k), key=k, kind=_KIND) or 0 for k in keys)

    beat = _open(config, values, "state:beat", _beat)
    return TokenState(
        last_renewal=_open(config, values, "state:last_renewal", _renewal),
        last_error=_open(config, values, "state:last_error", _renewal),
        beat_last_run=beat[0] if beat else None,
        beat_last_outcome=beat[1] if beat else None,
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
        "at": server_now(config),
        "outcome": OUTCOME_OK if error is None else type(error).__name__,
        "status": 200 if error is None else error.status_code,
        "latency": latency,
        "answered": answered,
    }
    _record(config, "state:last_api_call", record, _HOUR_TTL)


def read_api_call(config: Config) -> ApiCall | None:
    """The last API call the fleet recorded; raises CacheUnavailable if the cache cannot be read."""
    key = cache_key(config, "state:last_api_call")
    with guard_cache():
        raw = shared_cache(config).get(key)
    return _open(config, {key: raw}, "state:last_api_call", _api_call)


# --- each process's clock offset to the token server ---------------------------------------------

#: Slots for the processes' records: each process claims one with an atomic ``add``, so two
#: processes reporting at once never overwrite each other. A slot frees itself when its record
#: expires (a process reports at least every CLOCK_PROBE_EVERY while it runs).
_CLOCK_SLOTS = 64
_MAX_SKEW = 86400.0 * 366


@dataclass(frozen=True)
class ProcessClock:
    """One process's clock as it last measured it against the token server's.

    ``skew`` is this process's clock minus the server's (positive: ahead). ``refused`` is set when
    the measurement was beyond CLOCK_SKEW_MAX, so the process kept its previous correction.
    """

    process: str  # host:pid
    skew: float
    uncertainty: float
    source: str
    at: float  # epoch seconds on the token server's clock, as the process estimated it
    refused: bool


def _process_id() -> str:
    return f"{socket.gethostname()[:64]}:{os.getpid()}"


def _clock_slot_keys(config: Config, process: str) -> list[str]:
    """Every slot's key, from the process's own (a hash of its id): a process usually finds its slot first."""
    first = int(hashlib.sha256(process.encode()).hexdigest()[:8], 16) % _CLOCK_SLOTS
    return [cache_key(config, f"state:clock:{(first + i) % _CLOCK_SLOTS}") for i in range(_CLOCK_SLOTS)]


def _process_clock(data: dict[str, Any]) -> ProcessClock:
    return ProcessClock(
        process=entries.text(data, "process", max_length=_MAX_NAME),
        skew=entries.number(data, "skew", low=-_MAX_SKEW, high=_MAX_SKEW),
        uncertainty=entries.number(data, "uncertainty", low=0.0, high=_MAX_SECONDS),
        source=entries.text(data, "source", max_length=_MAX_NAME),
        at=entries.number(data, "at", low=0.0),
        refused=entries.flag(data, "refused"),
    )


def _open_clock(config: Config, key: str, raw: Any) -> ProcessClock | None:
    return entries.read_sealed(config, shared_cache(config), raw, key=key, kind=_KIND, parse=_process_clock)


def record_clock_offset(config: Config, estimate: OffsetEstimate | None, *, rejected: OffsetEstimate | None) -> None:
    """Record this process's latest measurement (``rejected`` wins: it is the more recent)."""
    measured = rejected if rejected is not None else estimate
    if measured is None:
        return
    process = _process_id()
    entry = {
        "process": process,
        "skew": -measured.offset,
        "uncertainty": measured.uncertainty,
        "source": measured.source,
        "at": server_now(config),
        "refused": rejected is not None,
    }
    ttl = max(2 * config.clock_probe_every, 3600.0)
    for key in _clock_slot_keys(config, process):
        try:
            sealed = seal(config, entry, key=key, kind=_KIND)
        except ValueError:  # a NaN: not recorded
            return
        raw = _recorder.get(config, key)
        current = None if raw is None else _open_clock(config, key, raw)
        if current is not None and current.process == process:
            _recorder.set(config, key, sealed, ttl)
            return
        if raw is None and _recorder.add(config, key, sealed, ttl, on_failure=True):
            return  # claimed (or the cache is down: nothing to record into)


def read_process_clocks(config: Config, *, since: float) -> list[ProcessClock]:
    """The processes that measured their clock since ``since``; raises CacheUnavailable."""
    keys = [cache_key(config, f"state:clock:{slot}") for slot in range(_CLOCK_SLOTS)]
    with guard_cache():
        found = shared_cache(config).get_many(keys)
    clocks = [clock for key, raw in found.items() if (clock := _open_clock(config, key, raw)) is not None]
    return sorted((c for c in clocks if c.at >= since), key=lambda c: c.process)
