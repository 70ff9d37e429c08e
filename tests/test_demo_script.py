"""``scripts/demo.py``: a taken port is reported before anything starts; the app follows the sandbox's port."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"


@pytest.fixture
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_taken_port_is_named_by_its_variable(demo):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as spare:
            spare.bind(("127.0.0.1", 0))
            free = str(spare.getsockname()[1])
        assert demo.busy_ports({"WEB_PORT": busy, "SANDBOX_PORT": free}) == ["WEB_PORT"]


def test_the_demo_refuses_to_start_on_a_taken_port(demo, capsys, monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(demo, "WEB_PORT", str(taken.getsockname()[1]))
        assert demo.main() == 2
    assert "WEB_PORT=<port> make demo" in capsys.readouterr().err


def test_the_app_follows_a_moved_sandbox(demo, monkeypatch):
    for name in ("BETTORSENSE_TOKEN_URL", "BETTORSENSE_API_URL"):
        monkeypatch.setenv(name, "")  # recorded, so the teardown removes what the script sets
        monkeypatch.delenv(name)
    demo.point_the_app_at_the_sandbox("8775")
    assert os.environ["BETTORSENSE_TOKEN_URL"] == "http://127.0.0.1:8775/oauth/token"
    assert os.environ["BETTORSENSE_API_URL"] == "http://127.0.0.1:8775/ci/api/rg"


def test_the_default_sandbox_port_keeps_the_preset(demo, monkeypatch):
    monkeypatch.setenv("BETTORSENSE_TOKEN_URL", "")
    monkeypatch.delenv("BETTORSENSE_TOKEN_URL")
    demo.point_the_app_at_the_sandbox("8765")
    assert "BETTORSENSE_TOKEN_URL" not in os.environ
