"""Clocks for the token tests: time that moves when the test says so, or real time that tells on sleepers."""

from __future__ import annotations

import threading

from bettorsense.tokens.clock import SystemClock
from tests.support.sandbox import JULY_1


class FakeClock:
    """A :class:`bettorsense.tokens.clock.Clock` whose time moves only by :meth:`advance` or :meth:`sleep`.

    Calling it gives the wall time, so the sandbox (``SandboxState.clock``) can share it: its JWT
    ``exp`` claim shortens a token's lifetime, so the manager and the sandbox must agree on the time.
    """

    def __init__(self, start: float = JULY_1 + 3600) -> None:
        self._wall = start
        self._monotonic = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._wall += seconds
            self._monotonic += seconds

    def __call__(self) -> float:
        return self._wall


class WatchedClock(SystemClock):
    """Real time; :attr:`slept` is set once code sleeps on it, i.e. waits for another's renewal."""

    def __init__(self) -> None:
        self.slept = threading.Event()

    def sleep(self, seconds: float) -> None:
        self.slept.set()
        super().sleep(seconds)


class SkewedClock:
    """Another machine's clock: ``base``'s time off by ``skew`` seconds (positive: ahead)."""

    def __init__(self, base: FakeClock, skew: float) -> None:
        self.base = base
        self.skew = skew

    def now(self) -> float:
        return self.base.now() + self.skew

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)
