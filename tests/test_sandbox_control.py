"""The /_sandbox/ control API through SandboxClient, the server's lifecycle, and the two launchers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import requests

from bettorsense.sandbox import Fault, SandboxClient, SandboxControlError, SandboxServer, SandboxState
from bettorsense.sandbox.server import _is_loopback
from tests.support.sandbox import CLIENT_ID, PROD, fetch_token, fresh_state, get, profile_url, request_token


@pytest.fixture
def state(server):
    return fresh_state(server, players=300)


@pytest.fixture
def control(server, state):
    return SandboxClient(server.url)


def test_health_and_stats(control, server, state):
    fetch_token(server)

    assert control.health()["status"] == "ok"
    stats = control.stats()
    assert stats["token_requests"][CLIENT_ID]["issued"] == 1
    assert stats["config"]["players"] == 300
    assert stats["clients"] == [CLIENT_ID]


def test_reset(control, server, state):
    token = fetch_token(server)
    get(profile_url(server, "player_1"), token)
    control.add_fault(target="api", kind="status", status=500)

    control.reset()

    stats = control.stats()
    assert stats["token_requests"] == {} and stats["api_requests"]["total"] == 0
    assert stats["faults"] == []
    assert get(profile_url(server, "player_1"), token).status_code == 401  # its tokens are forgotten


def test_faults(control, server, state):
    stored = control.add_fault(Fault(target="token", kind="status", status=503, times=2))
    control.add_fault(target="api", kind="bad_type", field="riskScore", value="high")

    assert stored["times"] == 2
    assert [f["kind"] for f in control.faults()] == ["status", "bad_type"]
    assert request_token(server).status_code == 503
    assert control.faults()[0]["times"] == 1
    assert control.clear_faults() == 2
    token = fetch_token(server)
    assert get(profile_url(server, "player_1"), token).json()["riskScore"] != "high"


def test_bad_fault_is_a_400(control):
    with pytest.raises(SandboxControlError) as caught:
        control._call("POST", "faults", {"target": "token", "kind": "explode"})

    assert caught.value.status == 400
    assert "explode" in str(caught.value)


def test_revoke(control, server, state):
    state.add_client("other", "other-secret")
    token = fetch_token(server)
    other = fetch_token(server, client_id="other", client_secret="other-secret")

    assert control.revoke_tokens(CLIENT_ID) == 1
    assert get(profile_url(server, "player_1"), token).status_code == 401
    assert get(profile_url(server, "player_1"), other).status_code == 200
    assert control.revoke_tokens() == 1
    assert get(profile_url(server, "player_1"), other).status_code == 401
    assert control.stats()["revocations"] == 2


def test_set_config(control, server, state):
    config = control.set_config(token_lifetime=5, enforce_reuse=True)

    assert config["expires_in"] == 5 and config["enforce_reuse"] is True and config["reuse_threshold"] == 1
    assert request_token(server).json()["expires_in"] == 5
    assert request_token(server).status_code == 429
    assert control.config()["enforce_reuse"] is True

    with pytest.raises(SandboxControlError):
        control.set_config(batch_envelope="xml")
    with pytest.raises(SandboxControlError):
        control.set_config(colour="blue")


def test_advance_day(control, state):
    before = state.current_day

    answer = control.advance_day()

    assert answer["days_advanced"] == 1
    assert answer["day"] == state.current_day.isoformat()
    assert state.current_day.toordinal() == before.toordinal() + 1
    assert control.advance_day(2)["days_advanced"] == 3


def test_recorded_requests(control, server, state):
    token = fetch_token(server)
    get(profile_url(server, "a/b"), token)

    (recorded,) = control.requests(limit=1)

    assert recorded["route"] == "profile"
    assert recorded["account_id"] == "a/b"
    assert recorded["path"].endswith("/accountid/a%2Fb")
    assert recorded["status"] == 404


def test_add_client(control, server, state):
    created = control.add_client("prod-only", "s3cret", audiences=[PROD], bookmakers=[(1, 2)])

    assert created == {"client_id": "prod-only", "audiences": [PROD], "bookmakers": [[1, 2]]}
    token = fetch_token(server, PROD, client_id="prod-only", client_secret="s3cret")
    assert get(profile_url(server, "player_1", "production", 1, 2), token).status_code == 200


def test_unknown_endpoint_and_method(server, state):
    assert requests.get(f"{server.url}/_sandbox/nothing", timeout=5).status_code == 404
    wrong = requests.get(f"{server.url}/_sandbox/reset", timeout=5)
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"


def test_control_is_for_loopback_clients():
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("127.9.9.9")
    assert not _is_loopback("10.0.0.5") and not _is_loopback("example.org")


def test_client_rejects_non_http_urls():
    with pytest.raises(ValueError):
        SandboxClient("ftp://127.0.0.1:1")


class TestLifecycle:
    def test_urls(self):
        with SandboxServer(SandboxState(), port=0) as server:
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert server.token_url == f"{server.url}/oauth/token"
            assert server.api_url("integration") == f"{server.url}/ci/api/rg"
            assert server.api_url("production") == f"{server.url}/api/rg"
            with pytest.raises(ValueError):
                server.api_url("staging")

    def test_stop_closes_the_port_and_keep_alive_connections(self):
        server = SandboxServer().start()
        session = requests.Session()
        assert session.get(f"{server.url}/_sandbox/health", timeout=5).status_code == 200

        server.stop()

        with pytest.raises(requests.exceptions.ConnectionError):
            session.get(f"{server.url}/_sandbox/health", timeout=5)
        server.stop()  # idempotent

    def test_cannot_start_twice(self):
        with SandboxServer() as server, pytest.raises(RuntimeError):
            server.start()

    def test_ipv6_loopback(self):
        try:
            server = SandboxServer(host="::1").start()
        except OSError:
            pytest.skip("no IPv6 loopback here")
        try:
            assert server.url.startswith("http://[::1]:")
            assert requests.get(f"{server.url}/_sandbox/health", timeout=5).json()["status"] == "ok"
        finally:
            server.stop()

    def test_concurrent_clients(self):
        with SandboxServer(SandboxState(players=100)) as server:
            token = fetch_token(server)
            statuses: list[int] = []

            def worker() -> None:
                with requests.Session() as session:
                    for i in range(1, 21):
                        response = session.get(
                            profile_url(server, f"player_{i}"), headers={"Authorization": f"Bearer {token}"}
                        )
                        statuses.append(response.status_code)

            threads = [threading.Thread(target=worker) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

            assert len(statuses) == 160 and set(statuses) == {200}
            assert server.state.stats()["api_requests"]["total"] == 160


def _launch(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = process.stdout.readline()
    assert "listening on http://" in first, process.stderr.read() if process.stderr else first
    return process, first.rsplit(" ", 1)[-1].strip()


def test_runs_as_a_module_without_django():
    process, url = _launch(
        [sys.executable, "-m", "bettorsense.sandbox", "--port", "0", "--token-lifetime", "30", "--players", "50"]
    )
    try:
        control = SandboxClient(url)
        assert control.config()["expires_in"] == 30
        assert control.config()["players"] == 50
    finally:
        process.terminate()
        process.wait(timeout=10)
    check = subprocess.run(
        [sys.executable, "-c", "import sys, bettorsense.sandbox.cli; print('django' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "False"


def test_management_command_runs_the_server_in_the_foreground():
    from bettorsense.management.commands.bettorsense_sandbox import Command

    command = Command()
    options = vars(
        command.create_parser("manage.py", "bettorsense_sandbox").parse_args(
            ["--port", "0", "--token-lifetime", "12", "--enforce-reuse", "--players", "40", "--client", "x:y"]
        )
    )
    runner = threading.Thread(target=command.handle, kwargs=options, daemon=True)
    runner.start()
    for _ in range(200):
        if command.server is not None and command.server._httpd is not None:
            break
        time.sleep(0.01)
    server = command.server
    assert server is not None
    try:
        config = SandboxClient(server.url).config()
        assert (config["expires_in"], config["enforce_reuse"], config["players"]) == (12, True, 40)
        assert "x" in server.state.clients
    finally:
        server.stop()
    runner.join(timeout=5)
    assert not runner.is_alive()


def test_management_command_reports_a_busy_port():
    from django.core.management.base import CommandError

    from bettorsense.management.commands.bettorsense_sandbox import Command

    with SandboxServer() as busy:
        command = Command()
        options = vars(command.create_parser("manage.py", "bettorsense_sandbox").parse_args(["--port", str(busy.port)]))
        with pytest.raises(CommandError, match="Cannot start the sandbox"):
            command.handle(**options)
