"""The load generator: threads calling the demo's risk-profile view for the whole scenario.

Bounded in threads, in calls and in time, and aimed at loopback only. Each thread logs in as a
staff user, since the demo honours ``?fresh=1`` only for staff. Most calls ask with ``?fresh=1``
so that each one goes through the token and the API (a cached profile would use neither); one in
ten asks without it, so the profile cache and its stale fallback are exercised
too. Each answer is recorded (times, status, the error class the view names, the profile's
source); each distinct body, with its headers, is kept for the leak search.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from urllib.parse import urlsplit

import requests

MAX_CALLS = 400_000


def staff_session(base_url: str, username: str, password: str, *, next_path: str = "/admin/") -> requests.Session:
    """A session logged in through the admin's login form; raises if the login did not take."""
    session = requests.Session()
    login = f"{base_url.rstrip('/')}/admin/login/"
    page = session.get(login, timeout=30)
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if found is None:
        raise RuntimeError(f"no login form at {login} ({page.status_code})")
    data = {"username": username, "password": password, "csrfmiddlewaretoken": found.group(1), "next": next_path}
    session.post(login, timeout=30, data=data)
    if "sessionid" not in session.cookies:
        raise RuntimeError(f"the login of {username!r} did not take")
    return session


def active_players(count: int = 300) -> list[str]:
    """Accounts the sandbox answers 200 for: ``player_N`` except every 89th and 97th."""
    return [f"player_{n}" for n in range(1, count + 1) if n % 89 and n % 97]


@dataclass(frozen=True)
class Call:
    started: float
    ended: float
    status: int  # 0: no HTTP answer
    error: str | None  # the view's "error" (an exception class name), or the transport error
    message: str | None
    source: str | None  # "api", "cache", "stale" for a 200
    fresh: bool
    retry_after: str | None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def latency(self) -> float:
        return self.ended - self.started


class Load:
    """``threads`` callers, each waiting ``think`` seconds between calls, until stopped or ``max_seconds``."""

    def __init__(
        self,
        base_url: str,
        bodies_dir: Path,
        *,
        threads: int = 4,
        think: float = 0.02,
        max_seconds: float = 900.0,
        seed: int = 1,
        login: tuple[str, str] | None = None,
    ) -> None:
        if urlsplit(base_url).hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the load generator only calls loopback")
        self.base_url = base_url.rstrip("/")
        self.bodies_dir = bodies_dir
        self.threads = threads
        self.think = think
        self.max_seconds = max_seconds
        self.players = active_players()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._digests: set[str] = set()
        self._seed = seed
        self.login = login  # (username, password) of a staff user; set before start()

    def start(self) -> Load:
        self._deadline = time.monotonic() + self.max_seconds
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=60)
        self._workers.clear()

    def _run(self, index: int) -> None:
        rng = random.Random(self._seed * 1000 + index)  # test data, not crypto
        session = self._session()
        while not self._stop.is_set() and time.monotonic() < self._deadline and len(self.calls) < MAX_CALLS:
            account = rng.choice(self.players)
            fresh = rng.random() < 0.9
            url = f"{self.base_url}/players/{account}/risk-profile/" + ("?fresh=1" if fresh else "")
            started = time.time()
            try:
                response = session.get(url, timeout=(2, 30))
            except requests.RequestException as err:
                self._record(Call(started, time.time(), 0, type(err).__name__, str(err)[:200], None, fresh, None))
                session = self._session()
            else:
                ended = time.time()
                error = message = source = None
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    error, message, source = body.get("error"), body.get("message"), body.get("source")
                self._keep_body(response)
                self._record(
                    Call(
                        started,
                        ended,
                        response.status_code,
                        error,
                        message,
                        source,
                        fresh,
                        response.headers.get("Retry-After"),
                    )
                )
            self._stop.wait(self.think)

    def _session(self) -> requests.Session:
        if self.login is None:
            return requests.Session()
        while not self._stop.is_set():
            try:
                return staff_session(self.base_url, *self.login)
            except (requests.RequestException, RuntimeError):
                self._stop.wait(0.5)  # the web tier is down: calls record that; log in when it is back
        return requests.Session()

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _keep_body(self, response: requests.Response) -> None:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "date")
        text = f"{response.status_code}\n{headers}\n\n{response.text}"
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self._lock:
            if digest in self._digests:
                return
            self._digests.add(digest)
        (self.bodies_dir / f"load-{digest[:16]}.txt").write_text(text)

    # --- figures ----------------------------------------------------------------------------

    def between(self, start: float, end: float) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if start <= c.started < end]

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)


def failed(calls: Iterable[Call]) -> list[Call]:
    return [c for c in calls if not c.ok]


def latency_ms(calls: Iterable[Call]) -> str:
    values = sorted(c.latency * 1000 for c in calls)
    if not values:
        return "n/a"
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"median {median(values):.0f} ms, p95 {p95:.0f} ms"


def error_counts(calls: Iterable[Call]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in calls:
        if not call.ok:
            key = f"{call.status} {call.error}"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
