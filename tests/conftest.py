"""Shared fixtures: the sandbox over real HTTP, and settings pointing the app at it."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections

from bettorsense import tokens
from bettorsense.sandbox import SandboxServer, SandboxState

CLIENT_ID = "demo-client"
CLIENT_SECRET = "demo-client-secret"

# In CI's second run the services are required: a test that cannot reach them fails, never skips.
SERVICES_REQUIRED = os.environ.get("BETTORSENSE_REQUIRE_SERVICES") == "1"


SANDBOX_DEFAULTS: dict[str, Any] = {
    "token_lifetime": 600,
    "enforce_reuse": False,
    "reuse_threshold": None,
    "players": 5000,
    "page_size": 1000,
    "batch_envelope": "items",
    "batch_date_param": "changedSince",
}


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


def sandbox_settings(server: SandboxServer, **overrides: Any) -> dict[str, Any]:
    """A BETTORSENSE dict aimed at the sandbox, with a key prefix of its own for isolation."""
    return {
        "ENVIRONMENT": "sandbox",
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "BOOKMAKER_ID": 123,
        "SUB_BOOKMAKER_ID": 456,
        "TOKEN_URL": server.token_url,
        "API_URL": server.api_url("integration"),
        "KEY_PREFIX": f"bstest-{uuid.uuid4().hex[:10]}",
        "CONNECT_TIMEOUT": 1.0,
        "READ_TIMEOUT": 2.0,
        **overrides,
    }


@pytest.fixture
def configure(settings: Any, sandbox: SandboxServer) -> Callable[..., dict[str, Any]]:
    """Point the app at the sandbox; call again with overrides to change settings mid-test."""
    base = sandbox_settings(sandbox)

    def apply(**overrides: Any) -> dict[str, Any]:
        settings.BETTORSENSE = {**base, **overrides}
        return settings.BETTORSENSE

    apply()
    return apply


@pytest.fixture(autouse=True)
def _fresh_process_tokens() -> Iterator[None]:
    tokens.reset_process_state()
    yield
    tokens.reset_process_state()


def run_in_threads(target: Callable[[], Any], count: int) -> list[Any]:
    """Run ``target`` in ``count`` threads at once; return results or raised exceptions."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = target()
        except Exception as err:  # collected for the caller's assertions
            results[index] = err
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
