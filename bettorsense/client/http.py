"""One pooled ``requests.Session`` per process, and the small HTTP helpers shared by the app."""

from __future__ import annotations

import contextlib
import email.utils
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

import requests
import urllib3
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
    # Without a Content-Encoding urllib3 buffers nothing: once the transport has closed the body
    # (every byte of its Content-Length delivered), no piece remains and the empty read is skipped.
    identity = not response.headers.get("Content-Encoding")
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
        if identity and getattr(raw, "closed", False):
            break
    if clock() > deadline:
        raise BodyDeadlineExceeded
    return b"".join(pieces)


def _limit_socket_wait(raw: Any, seconds: float) -> None:
    """Make the next socket read give up after ``seconds`` (the read timeout applies per read only)."""
    connection = getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        seconds = max(seconds, 0.001)
        if sock.gettimeout() != seconds:  # settimeout is a system call; urllib3 often set this one already
            sock.settimeout(seconds)


# --- one deadline for a whole request ----------------------------------------------------------

_watched = threading.local()


class RequestWatch:
    """Cuts off, at a monotonic deadline, the connection a request opens in this thread.

    The connect and read timeouts apply to each socket operation: an answer whose status line and
    headers arrive a byte at a time, each within the read timeout, holds the caller for as long as
    the far side likes. A timer shuts the request's socket down at the deadline instead, which ends
    any read blocked on it. Only connections opened through :func:`deadline_adapter` are seen.
    """

    def __init__(self, deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.deadline = deadline
        self.clock = clock
        self.fired = False
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> RequestWatch:
        _watched.current = self
        self._timer = threading.Timer(max(0.0, self.deadline - self.clock()), self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _watched.current = None
        if self._timer is not None:
            self._timer.cancel()

    def opened(self, sock: Any) -> None:
        with self._lock:
            self._sockets.append(sock)
            late = self.fired
        if late:  # the deadline passed while connecting (name resolution, a slow handshake)
            _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: Any) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _report_socket(connection: Any) -> None:
    watch: RequestWatch | None = getattr(_watched, "current", None)
    sock = getattr(connection, "sock", None)
    if watch is not None and sock is not None:
        watch.opened(sock)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _report_socket(self)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _report_socket(self)


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        _report_socket(connection)  # a kept-alive connection: its socket is already open
        return connection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        _report_socket(connection)
        return connection


class _DeadlineAdapter(HTTPAdapter):
    """Connections whose sockets a :class:`RequestWatch` sees, new or kept alive."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def deadline_adapter(session: requests.Session, url: str) -> None:
    """Send the requests to ``url`` through connections a :class:`RequestWatch` can cut off."""
    if not isinstance(session.adapters.get(url), _DeadlineAdapter):
        session.mount(url, _DeadlineAdapter(pool_connections=1, pool_maxsize=4, max_retries=0))
