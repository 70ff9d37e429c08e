"""Shared fixtures: the sandbox over real HTTP, and settings pointing the app at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bettorsense import tokens
from bettorsense.sandbox import SandboxServer, SandboxState
from tests.support.sandbox import sandbox_settings

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
