"""The time the token code reads: injected, so that tests move it instead of sleeping.

Token expiries, the fleet's backoff and every other deadline in the shared cache are instants on
the token server's clock, so that they mean the same to every process whatever its own clock says.
:class:`ServerClock` is this process's clock corrected by its latest estimate of the offset to the
token server, measured from the token server's answers (:func:`estimate_offset`). Durations and
wait bounds stay on the local monotonic clock.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final, Protocol

#: An estimate less certain than this (a slow answer) is not adopted: the previous one is kept.
MAX_UNCERTAINTY: Final = 5.0
#: Kept beyond a token's expiry by the cache: Django's database and file caches judge an entry's
#: expiry on each reader's own clock, so a reader 60 s ahead would otherwise lose it early.
CACHE_CLOCK_SLACK: Final = 120


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch: token lifetimes and the fleet's backoff are on this clock."""
        ...

    def monotonic(self) -> float:
        """Seconds for durations and wait bounds, never set back."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Final[Clock] = SystemClock()


@dataclass(frozen=True)
class OffsetEstimate:
    """Server time minus local time, measured at local time ``measured_at``.

    The true offset is below a nonzero ``offset`` by at most ``2 * uncertainty``: the server's time is
    never overestimated as earlier than it is. Zero means the measurement could not tell this clock
    from the server's (the true offset is then within ``2 * uncertainty`` of zero).
    """

    offset: float
    uncertainty: float
    measured_at: float  # local epoch seconds
    source: str  # "date", "iat" or "date+iat"


def http_date_seconds(value: str | None) -> float | None:
    """An HTTP ``Date`` header as epoch seconds; None if absent or not a date."""
    if not value or len(value) > 64:
        return None
    try:
        seconds = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) else None


def estimate_offset(
    *, sent_at: float, received_at: float, date: float | None, iat: float | None
) -> OffsetEstimate | None:
    """The offset to the server from one exchange sent and answered at these local times.

    ``date`` (the answer's ``Date`` header) and ``iat`` (the token's issue time) are whole seconds,
    truncated, of an instant between the send and the receipt. Each bounds the offset to
    ``(stamp - received_at, stamp + 1 - sent_at)``. The estimate is zero if both allow it, else the
    upper end of what both allow; ``uncertainty`` is half the width of that interval. If they
    disagree (the issuer and the HTTP front are different machines), the ``Date`` wins.
    """
    if not received_at >= sent_at:
        return None
    bounds: list[tuple[str, float, float]] = [
        (name, stamp - received_at, stamp + 1.0 - sent_at)
        for name, stamp in (("date", date), ("iat", iat))
        if stamp is not None and math.isfinite(stamp)
    ]
    if not bounds:
        return None
    source, low, high = bounds[0]
    if len(bounds) == 2:
        both_low, both_high = max(bounds[0][1], bounds[1][1]), min(bounds[0][2], bounds[1][2])
        if both_low <= both_high:
            source, low, high = "date+iat", both_low, both_high
    # A clock the stamps cannot prove wrong is left alone, so that processes whose clocks agree keep
    # agreeing to the microsecond. A wrong one is corrected to the latest server time the stamps
    # allow: then the process may renew up to the interval's width early, which the vendor's reuse
    # slack absorbs, but never sends a token later than it believes.
    offset = 0.0 if low <= 0.0 <= high else high
    return OffsetEstimate(offset, (high - low) / 2, received_at, source)


class ServerClock:
    """The token server's time as this process estimates it: a :class:`Clock` for expiry arithmetic.

    Without an estimate the offset is zero, i.e. the local clock is trusted as before. An estimate
    beyond ``max_offset`` is absurd (a server's clock is wrong, or a proxy's answer was replayed):
    it is reported through :attr:`rejected` and not adopted.
    """

    def __init__(self, local: Clock, *, max_offset: float) -> None:
        self.local = local
        self.max_offset = max_offset
        self._estimate: OffsetEstimate | None = None
        self._rejected: OffsetEstimate | None = None
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def estimate(self) -> OffsetEstimate | None:
        """The estimate in use, if any."""
        return self._estimate

    @property
    def rejected(self) -> OffsetEstimate | None:
        """The latest estimate refused as beyond ``max_offset``, if it is more recent than the one in use."""
        return self._rejected

    @property
    def offset(self) -> float:
        return self._offset

    def observe(self, estimate: OffsetEstimate) -> bool:
        """Adopt ``estimate`` if it is plausible; False if it was refused."""
        if not (math.isfinite(estimate.offset) and 0 <= estimate.uncertainty <= MAX_UNCERTAINTY):
            return False
        with self._lock:
            if abs(estimate.offset) > self.max_offset:
                self._rejected = estimate
                return False
            self._estimate, self._rejected, self._offset = estimate, None, estimate.offset
        return True

    def now(self) -> float:
        return self.local.now() + self._offset

    def monotonic(self) -> float:
        return self.local.monotonic()

    def sleep(self, seconds: float) -> None:
        self.local.sleep(seconds)
