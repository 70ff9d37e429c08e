"""One pooled ``requests.Session`` per process, and the small HTTP helpers shared by the app."""

from __future__ import annotations

import email.utils
import math
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bettorsense import __version__

USER_AGENT = f"bettorsense/{__version__} python-requests/{requests.__version__}"

_session: requests.Session | None = None
_session_pid: int = 0
_session_lock = threading.Lock()


def get_session() -> requests.Session:
    """The process's session; a forked child (Celery prefork, gunicorn) builds its own."""
    global _session, _session_pid
    session = _session
    if session is not None and _session_pid == os.getpid():
        return session
    with _session_lock:
        if _session is None or _session_pid != os.getpid():
            _session = _new_session()
            _session_pid = os.getpid()
        return _session


def _new_session() -> requests.Session:
    session = requests.Session()
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _reset_after_fork() -> None:
    global _session, _session_lock
    _session = None
    _session_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def parse_retry_after(value: str | None, *, now: float | None = None, maximum: float = math.inf) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), at most ``maximum``.

    None when the header is absent or is no finite number of seconds: ``Infinity``, ``nan``, ``1e999``
    and dates past year 9999 are not believed. ``now`` is the epoch time an HTTP date is counted from.
    """
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value, time.time() if now is None else now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), maximum)


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
        if when.tzinfo is None:  # "-0000": RFC 5322's "UTC, local time unknown"
            when = when.replace(tzinfo=UTC)
        return when.timestamp() - now
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


# --- bounded reading of a streamed answer ----------------------------------------------------

#: Largest piece asked for at a time; decompressed pieces are no larger (urllib3 bounds the inflation).
READ_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """The answer's body, decompressed, is longer than the limit it was read with."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The answer is larger than {limit} bytes once decompressed.")
        self.limit = limit


class BodyDeadlineExceeded(Exception):
    """The answer's body was still arriving when the call's deadline passed."""


def read_body(
    response: requests.Response,
    *,
    max_bytes: int,
    deadline: float,
    read_timeout: float,
    truncate: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """The body of a response requested with ``stream=True``, decompressed, read within a deadline.

    Past ``max_bytes`` decompressed bytes: :class:`BodyTooLarge`, or with ``truncate`` the first
    ``max_bytes`` (the rest is left unread; closing the response drops the connection). Once the
    monotonic ``deadline`` passes: :class:`BodyDeadlineExceeded`; each socket read waits at most
    until the deadline, so a body sent a byte at a time cannot hold the caller past it. Memory
    stays within about twice ``max_bytes``, however well the body compresses. Any other failure of
    the transport (a reset, a corrupt gzip stream) is raised as urllib3 raises it.
    """
    raw = response.raw
    pieces: list[bytes] = []
    total = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise BodyDeadlineExceeded
        _limit_socket_wait(raw, min(read_timeout, remaining))
        piece = raw.read1(min(READ_CHUNK, max_bytes - total + 1), decode_content=True)
        if not piece:
            break
        total += len(piece)
        if total > max_bytes:
            if not truncate:
                raise BodyTooLarge(max_bytes)
            pieces.append(piece[: len(piece) - (total - max_bytes)])
            break
        pieces.append(piece)
    if clock() > deadline:
        raise BodyDeadlineExceeded
    return b"".join(pieces)


def _limit_socket_wait(raw: Any, seconds: float) -> None:
    """Make the next socket read give up after ``seconds`` (the read timeout applies per read only)."""
    connection = getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))
