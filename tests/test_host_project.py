"""The README's "Using it in your project", executed: a host project built from exactly its snippets.

Each snippet of that section follows an HTML comment ``<!-- host:NAME -->``. This module builds the
wheel, installs it (not editable) with the ``redis`` extra into a fresh virtualenv, runs
``django-admin startproject proj``, applies the snippets as the README says, then runs ``check``,
``migrate``, the staff permissions, a real Celery worker and beat against the sandbox, and the
profile calls. When the README and the package disagree, a test here fails.

Redis is the cache and the broker, as in the README: database ``HOST_REDIS_URL`` (default 12),
emptied before the run. Without Redis the module is skipped, unless ``BETTORSENSE_REQUIRE_SERVICES=1``
(CI), where it fails. The virtualenv is made once per test session; pip's cache makes it quick.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests

from harness.ports import free_port
from tests.support.distributions import ROOT, build_distributions

pytestmark = pytest.mark.celery  # a real worker and beat: the real-process xdist group

HOST_REDIS_URL = os.environ.get("HOST_REDIS_URL", "redis://127.0.0.1:6379/12")
REQUIRE_SERVICES = os.environ.get("BETTORSENSE_REQUIRE_SERVICES") == "1"
SANDBOX_PRESET_PORT = "8765"
COMMAND_TIMEOUT = 120
INSTALL_TIMEOUT = 600
# Beat's first tick comes one interval (10 s in the README) after it starts; the worker and beat
# take a few seconds to start on a busy machine.
RENEWAL_TIMEOUT = 90
SNIPPET = re.compile(r"<!-- host:(?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.DOTALL)
EXPECTED_SNIPPETS = {
    "install",
    "settings",
    "celery",
    "celery-init",
    "urls",
    "sandbox",
    "migrate",
    "permissions",
    "celery-run",
    "profile",
    "call",
}
# Variables of the test process that would leak into the host's: pytest-django's settings module,
# the demo's environment, this repository's virtualenv.
LEAKING = ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV", "CACHE_URL", "DATABASE_URL", "REDIS_URL")
LEAKING_PREFIXES = ("BETTORSENSE_", "CELERY_")


def readme_snippets() -> dict[str, str]:
    section = (ROOT / "README.md").read_text().split("## Using it in your project", 1)[1].split("\n## ", 1)[0]
    snippets: dict[str, str] = {}
    for match in SNIPPET.finditer(section):
        assert match["name"] not in snippets, f"two README snippets are named host:{match['name']}"
        snippets[match["name"]] = match["body"]
    return snippets


def shell_lines(snippet: str) -> list[list[str]]:
    """The commands of a ``sh`` snippet: one per line, comments and a trailing ``&`` dropped."""
    commands = []
    for line in snippet.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[-1] == "&":
            words = words[:-1]
        if words:
            commands.append(words)
    return commands


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@dataclass
class Host:
    """The host project: its virtualenv, its folder, its environment and the processes it started."""

    venv: Path
    project: Path
    env: dict[str, str]
    sandbox_port: str
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def argv(self, words: list[str]) -> list[str]:
        """A README command with ``python``, ``pip``, ``celery`` taken from the host's virtualenv."""
        program, *rest = words
        if program in ("python", "pip", "celery", "django-admin"):
            program = str(self.venv / "bin" / program)
        return [program, *rest]

    def run(self, words: list[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(words), cwd=self.project, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def must(self, words: list[str], timeout: float = COMMAND_TIMEOUT) -> str:
        result = self.run(words, timeout)
        assert result.returncode == 0, (
            f"{shlex.join(words)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
        return result.stdout

    def shell(self, code: str) -> str:
        # --no-imports: Django 5.2's shell announces its automatic imports on stdout otherwise.
        return self.must(["python", "manage.py", "shell", "--no-imports", "-c", code])

    def start(self, name: str, words: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            self.argv(words),
            cwd=self.project,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()

    def sandbox_token_requests(self) -> int:
        stats = requests.get(f"http://127.0.0.1:{self.sandbox_port}/_sandbox/stats", timeout=5).json()
        return sum(client["total"] for client in stats["token_requests"].values())


def host_env(venv: Path, sandbox_exports: dict[str, str]) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if key not in LEAKING and not key.startswith(LEAKING_PREFIXES)
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["REDIS_URL"] = env["CELERY_BROKER_URL"] = HOST_REDIS_URL
    env.update(sandbox_exports)
    return env


def sandbox_exports(snippet: str, port: str) -> dict[str, str]:
    exports: dict[str, str] = {}
    for words in shell_lines(snippet.replace(SANDBOX_PRESET_PORT, port)):
        if words[0] == "export":
            for assignment in words[1:]:
                key, value = assignment.split("=", 1)
                exports[key] = value
    return exports


def wait_for_port(port: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sandbox exited during start-up"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", int(port))) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"the sandbox did not listen on {port} within {timeout} s")


@pytest.fixture(scope="session")
def snippets() -> dict[str, str]:
    return readme_snippets()


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory, snippets: dict[str, str]) -> Iterator[Host]:
    if not redis_reachable(HOST_REDIS_URL):
        message = f"the host project uses Redis as the README does, and {HOST_REDIS_URL} does not answer"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    redis.Redis.from_url(HOST_REDIS_URL).flushdb()  # no token of an earlier run's sandbox
    work = tmp_path_factory.mktemp("host")
    wheel = build_distributions(work / "build").wheel

    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=COMMAND_TIMEOUT)
    (install,) = shell_lines(snippets["install"])
    assert install == ["pip", "install", "bettorsense[redis]"]  # the README installs the package by name
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", f"bettorsense[redis] @ {wheel.as_uri()}"]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    port = str(free_port())
    env = host_env(venv, sandbox_exports(snippets["sandbox"], port))
    subprocess.run(
        [str(venv / "bin" / "django-admin"), "startproject", "proj"], cwd=work, env=env, check=True, timeout=60
    )
    project = work / "proj"
    with (project / "proj" / "settings.py").open("a") as settings:
        settings.write("\n\n" + snippets["settings"] + "\n")
    (project / "proj" / "celery.py").write_text(snippets["celery"] + "\n")
    (project / "proj" / "__init__.py").write_text(snippets["celery-init"] + "\n")
    with (project / "proj" / "urls.py").open("a") as urls:
        urls.write("\n" + snippets["urls"] + "\n")

    logs = work / "logs"
    logs.mkdir()
    host = Host(venv=venv, project=project, env=env, sandbox_port=port, logs=logs)
    try:
        (sandbox_command,) = [
            w for w in shell_lines(snippets["sandbox"].replace(SANDBOX_PRESET_PORT, port)) if w[0] != "export"
        ]
        wait_for_port(port, host.start("sandbox", sandbox_command))
        migrate, check = shell_lines(snippets["migrate"])
        assert migrate[-1] == "migrate" and check[-1] == "check"
        host.must(migrate)
        yield host
    finally:
        host.stop_all()


def test_the_readme_marks_every_step_of_the_integration(snippets):
    assert set(snippets) == EXPECTED_SNIPPETS


def test_the_installed_package_is_the_built_wheel_not_this_tree(host):
    where = host.shell("import bettorsense; print(bettorsense.__file__)").strip()
    assert Path(where).is_relative_to(host.venv)
    demo = host.run(["python", "manage.py", "bettorsense_demo_user"])
    assert demo.returncode != 0 and "Unknown command" in demo.stderr


def test_check_finds_no_issue(host, snippets):
    (_, check) = shell_lines(snippets["migrate"])
    result = host.run(check)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert result.stderr == ""


def test_the_permissions_snippet_grants_every_permission_it_names(host, snippets):
    named = re.findall(r'^\s+"(\w+)",', snippets["permissions"], re.MULTILINE)
    assert len(named) == 6
    host.shell(snippets["permissions"])
    granted = host.shell(
        "from django.contrib.auth.models import Group\n"
        "staff = Group.objects.get(name='Bettor Sense staff')\n"
        "print(' '.join(sorted(staff.permissions.values_list('codename', flat=True))))"
    )
    assert granted.split() == sorted(named)


def test_beat_renews_the_token_and_the_profile_calls_use_it(host, snippets):
    worker, beat = shell_lines(snippets["celery-run"])
    assert worker[:4] == ["celery", "-A", "proj", "worker"] and beat[:4] == ["celery", "-A", "proj", "beat"]
    assert host.sandbox_token_requests() == 0
    host.start("worker", worker)
    host.start("beat", beat)

    token_command, profile_command = shell_lines(snippets["profile"])
    deadline = time.monotonic() + RENEWAL_TIMEOUT
    shown = host.run(token_command)
    while "by beat, ok" not in shown.stdout:
        exited = [p.args for p in host.processes if p.poll() is not None]
        assert not exited, f"exited: {exited}\n{host.log('worker')}\n{host.log('beat')}"
        assert time.monotonic() < deadline, f"no renewal by beat:\n{shown.stdout}{host.log('worker')}"
        time.sleep(1)
        shown = host.run(token_command)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "bettorsense.tasks.refresh_token" in host.log("worker")

    profile = host.must(profile_command)
    assert "player_1" in profile

    call = snippets["call"]
    (printed_line,) = [line for line in call.splitlines() if line.startswith("print(")]
    expected = printed_line.split("# ", 1)[1].split(",", 1)[0]  # "22 No risk" in the README's comment
    assert host.shell(call).strip() == expected

    # Beat's one token served every call after it: the fleet shares it through Redis.
    assert host.sandbox_token_requests() == 1


def test_the_urls_snippet_serves_the_health_endpoint(host):
    answer = host.shell(
        "from django.test import Client\n"
        "response = Client().get('/bettorsense/health/', HTTP_HOST='localhost')\n"
        "print(response.status_code, response.content.decode())"
    )
    status, body = answer.strip().split(" ", 1)
    assert status in ("200", "503")
    assert json.loads(body)["status"] in ("ok", "degraded", "down")
