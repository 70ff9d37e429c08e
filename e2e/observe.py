"""What the suite counts: the sandbox's counters over time, and timestamped events in the processes' logs.

The sandbox is the ground truth for token requests (it counts every one, issued or refused, and
why) and for API requests (by status, and each recorded with its route and decoded account id).
The processes' logs say who did what: ``Token renewed by beat`` / ``by request`` (tokens.py logs
every successful token request with its origin), ``API answered 503; retry 1 in 0.31 s``
(client.py), ``Circuit breaker opened`` (breaker.py).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .cluster import Cluster

# The demo's log format: "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s", in UTC
# (Django sets TZ from TIME_ZONE = "UTC").
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+) (\d+) (.*)$")


@dataclass(frozen=True)
class Event:
    at: float
    process: str  # log file: web, worker, beat, ...
    pid: int
    logger: str
    level: str
    message: str


def events(
    cluster: Cluster,
    pattern: str,
    processes: tuple[str, ...] = ("web", "worker", "beat"),
    start: float = 0.0,
    end: float = float("inf"),
) -> list[Event]:
    """Log lines of the app whose message matches ``pattern``, between ``start`` and ``end``."""
    regex = re.compile(pattern)
    found: list[Event] = []
    for name in processes:
        for line in cluster.log_text(name).splitlines():
            match = _LINE.match(line)
            if match is None or not regex.search(match.group(5)):
                continue
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
            if start <= at < end:
                found.append(Event(at, name, int(match.group(4)), match.group(3), match.group(2), match.group(5)))
    return sorted(found, key=lambda event: event.at)


@dataclass(frozen=True)
class Sample:
    at: float
    tokens: dict[str, Any]  # total, issued, rejected{reason: n}, violations
    api: dict[str, Any]  # total, by_status, by_route


class Monitor:
    """Samples the sandbox's counters twice a second, so a phase's figures are differences of samples."""

    def __init__(self, cluster: Cluster, interval: float = 0.5) -> None:
        self.cluster = cluster
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sample(self) -> Sample:
        stats = self.cluster.sandbox.stats()
        entry = stats["token_requests"].get(self.cluster.secrets.client_id, {"total": 0, "issued": 0, "rejected": {}})
        sample = Sample(time.time(), {**entry, "violations": stats["reuse_violations"]}, stats["api_requests"])
        with self._lock:
            self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, ValueError):  # the sandbox is stopping
                self.sample()

    def first_where(self, predicate: Any, after: float = 0.0) -> Sample | None:
        with self._lock:
            return next((s for s in self.samples if s.at >= after and predicate(s)), None)


def token_delta(before: Sample, after: Sample) -> dict[str, Any]:
    """Token requests between two samples: total, issued, rejected (all reasons), violations."""
    rejected_before = sum(before.tokens["rejected"].values())
    rejected_after = sum(after.tokens["rejected"].values())
    return {
        "total": after.tokens["total"] - before.tokens["total"],
        "issued": after.tokens["issued"] - before.tokens["issued"],
        "rejected": rejected_after - rejected_before,
        "violations": after.tokens["violations"] - before.tokens["violations"],
    }


def status_delta(before: Sample, after: Sample, status: str) -> int:
    return int(after.api["by_status"].get(status, 0)) - int(before.api["by_status"].get(status, 0))
