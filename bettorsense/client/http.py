"""One pooled ``requests.Session`` per process, and the small HTTP helpers shared by the app."""

from __future__ import annotations

import email.utils
import os
import threading
import time

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


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
