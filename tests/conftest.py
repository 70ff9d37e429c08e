"""Shared fixtures: the sandbox over real HTTP, and settings pointing the app at it.

Under pytest-xdist (``make test`` runs ``-n 3 --dist loadgroup``), the tests that start real
processes run one after the other on one worker: see :func:`pytest_collection_modifyitems`. Each
worker has a test database of its own (pytest-django), hence a database cache of its own; cache
keys are per test (``KEY_PREFIX``); sandboxes bind port 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache

from bettorsense import tokens
from bettorsense.profile_memo import MEMO
from bettorsense.sandbox import SandboxServer, SandboxState
from bettorsense.tokens.clock import SYSTEM_CLOCK
from tests.support.clock import FakeClock
from tests.support.sandbox import sandbox_settings

# The fleet test (eight processes, four threads each, with a 0.4 s renewal window) and the Celery
# test (beat must renew within 1.5 s of its window opening) prove timing promises, and each keeps
# most of a core busy: they never run at the same time, so neither slows the other's processes.
REAL_PROCESS_MARKERS = ("fleet", "celery")
REAL_PROCESS_GROUP = "real-processes"

SANDBOX_DEFAULTS: dict[str, Any] = {
    "token_lifetime": 600,
    "enforce_reuse": False,
    "reuse_threshold": None,
    "players": 5000,
    "page_size": 1000,
    "batch_envelope": "items",
    "batch_date_param": "changedSince",
}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if any(item.get_closest_marker(name) for name in REAL_PROCESS_MARKERS):
            item.add_marker(pytest.mark.xdist_group(REAL_PROCESS_GROUP))


def _is_transactional(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("django_db")
    if marker is None:
        return False
    return bool(marker.kwargs.get("transaction", marker.args[0] if marker.args else False))


@pytest.fixture(autouse=True)
def _empty_database_cache(request: pytest.FixtureRequest) -> None:
    """Start each transactional test on an empty database cache table.

    A ``transaction=True`` test's cache rows outlive it (pytest-django flushes the model tables
    only), each under the test's own prefix. Past MAX_ENTRIES (300) Django's database cache culls,
    on any write, the third of the rows with the lowest keys: a later test could lose the token it
    had just stored (the fleet and Celery tests' ``bsfleet-`` keys sort before every ``bstest-``
    one, so there the next process requested another token and the sandbox rejected it under the
    reuse rule). The table is in the worker's own test database: clearing it touches no other
    worker. Tests in a rolled-back transaction leave no rows.
    """
    if not _is_transactional(request.node):
        return
    cache = caches["default"]
    if isinstance(cache, DatabaseCache):
        request.getfixturevalue("transactional_db")
        cache.clear()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxState(), host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    """A sandbox of the module's own, for the sandbox's tests (they swap its state freely)."""
    with SandboxServer(SandboxState()) as srv:
        yield srv


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    """The session's sandbox, reset: no tokens, no faults, no counts, default lifetime."""
    sandbox_server.state.reset()
    sandbox_server.state.set_config(**SANDBOX_DEFAULTS)
    yield sandbox_server
    sandbox_server.state.reset()


@pytest.fixture
def configure(settings: Any, sandbox: SandboxServer) -> Callable[..., dict[str, Any]]:
    """Point the app at the sandbox; call again with overrides to change settings mid-test."""
    base = sandbox_settings(sandbox)

    def apply(**overrides: Any) -> dict[str, Any]:
        merged = {**base, **overrides}
        settings.BETTORSENSE = merged
        return merged

    apply()
    return apply


@pytest.fixture(autouse=True)
def _fresh_process_tokens() -> Iterator[None]:
    tokens.reset_process_state()
    yield
    tokens.reset_process_state()


@pytest.fixture(autouse=True)
def _empty_profile_memo() -> Iterator[None]:
    """Each test starts with an empty process memo of profiles, on the real clock."""
    MEMO.clear()
    MEMO.clock = SYSTEM_CLOCK
    yield
    MEMO.clear()
    MEMO.clock = SYSTEM_CLOCK


@pytest.fixture
def clock(sandbox: SandboxServer) -> Iterator[FakeClock]:
    """One fake time for the sandbox and for the managers a test builds with it."""
    fake = FakeClock()
    real = sandbox.state.clock
    sandbox.state.clock = fake
    yield fake
    sandbox.state.clock = real
