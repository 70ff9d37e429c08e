"""The time the token code reads: injected, so that tests move it instead of sleeping."""

from __future__ import annotations

import time
from typing import Final, Protocol


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
