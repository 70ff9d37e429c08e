"""The deployment under test: real processes, started and stopped by the suite.

One :class:`Cluster` per scenario: the sandbox (``python -m bettorsense.sandbox``), the demo project
under gunicorn (4 sync workers), a Celery worker, a separate Celery beat, a dedicated
``redis-server`` on a free port (services profile), and the token harvester (:mod:`e2e.harvest`).
Every process runs in its own process group and is stopped by group, TERM then KILL, in a
``finally``. Every port is free and loopback; every name (database, key prefix, Celery queue) is
the run's own, so other engineers' test runs on the machine are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bettorsense.sandbox import SandboxClient
from harness.fleet import stop_process_group
from harness.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"
WEB_WORKERS = 4
STARTUP_TIMEOUT = 120.0  # gunicorn, a Celery worker and beat on a busy two-core machine


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


class Process:
    """One child process in a process group of its own, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is not None:
            stop_process_group(self.popen, grace=grace)
        self.popen = None


@dataclass(frozen=True)
class Profile:
    """Where the deployment keeps its data: ``services`` (PostgreSQL + Redis) or ``embedded``."""

    name: str
    database_url: str
    redis: bool
    broker_dir: Path | None = None  # embedded: the filesystem broker's folders


@dataclass
class Secrets:
    """Everything the leak search looks for, made fresh for each run."""

    client_id: str = field(default_factory=lambda: f"e2e-{secrets.token_hex(4)}")
    client_secret: str = field(default_factory=lambda: f"cs-{secrets.token_hex(20)}")
    health_token: str = field(default_factory=lambda: f"ht-{secrets.token_hex(20)}")
    secret_key: str = field(default_factory=lambda: f"sk-{secrets.token_hex(24)}")
    rotated_secret_key: str = field(default_factory=lambda: f"sk-new-{secrets.token_hex(24)}")  # scenario 9


@dataclass(frozen=True)
class Timing:
    """The token lifetime and the beat interval; the renewal window follows from them."""

    lifetime: float
    refresh_every: float
    refresh_margin: float = 30.0
    expiry_safety: float = 5.0

    @property
    def window(self) -> float:
        return min(self.refresh_margin, 0.1 * self.lifetime)

    @property
    def safety(self) -> float:
        return min(self.expiry_safety, self.window / 4)


# Settings the scenarios need beyond the demo's environment variables (see e2e/settings.py).
OVERRIDES: dict[str, Any] = {
    "CONNECT_TIMEOUT": 2.0,
    "READ_TIMEOUT": 5.0,
    "BREAKER_COOLDOWN": 15.0,
}


class Redis:
    """A ``redis-server`` of the suite's own on a free port: never the machine's 6379."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: Process | None = None

    def start(self) -> None:
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
        ]
        self.process = Process("redis", argv, dict(os.environ), self.workdir / "redis.log").start()
        wait_until(f"redis-server on port {self.port}", self._started, 20)

    def _started(self) -> bool:
        if self.process is not None and not self.process.running:
            tail = (self.workdir / "redis.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"redis-server on port {self.port} exited: {' | '.join(tail)}")
        return self.ping()

    def ping(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=5)
            self.process = None


class Cluster:
    """The whole deployment for one scenario; ``with Cluster(...) as cluster:`` stops everything."""

    def __init__(
        self,
        name: str,
        profile: Profile,
        workdir: Path,
        timing: Timing,
        secrets_: Secrets,
        *,
        enforce_reuse: bool = True,
        extra_env: dict[str, str] | None = None,
        wrappers: dict[str, tuple[str, ...]] | None = None,
        extra_clients: list[tuple[str, str]] | None = None,
    ) -> None:
        self.name = name
        # A scenario's own variables for every process; over env() for processes started from now
        # on when a scenario changes it (scenario 9).
        self.extra_env = dict(extra_env or {})
        #: More sandbox clients, ``(client id, secret)``, registered as the sandbox starts (scenario 13).
        self.extra_clients: list[tuple[str, str]] = list(extra_clients or ())
        #: argv a process runs under, by process name, e.g. ``{"web": ("faketime", "-f", "+45s")}``
        self.wrappers = dict(wrappers or {})
        self.profile = profile
        self.timing = timing
        self.secrets = secrets_
        self.enforce_reuse = enforce_reuse
        self.dir = workdir / name
        self.logs = self.dir / "logs"  # searched for leaks
        self.bodies = self.dir / "bodies"  # searched for leaks
        self.private = self.dir / "private"  # the harvested tokens: never searched, deleted at the end
        for path in (self.logs, self.bodies, self.private):
            path.mkdir(parents=True, exist_ok=True)
        self.sandbox_port = free_port()
        self.web_port = free_port()
        self.redis = Redis(self.logs) if profile.redis else None
        self.key_prefix = f"bse2e-{secrets.token_hex(5)}"
        self.queue = f"bse2e-{secrets.token_hex(5)}"
        self.processes: dict[str, Process] = {}
        self.sandbox = SandboxClient(f"http://{LOOPBACK}:{self.sandbox_port}")
        self.web_url = f"http://{LOOPBACK}:{self.web_port}"
        self._body_seq = 0
        self.final_stats: dict[str, Any] | None = None  # the sandbox's counters once the fleet has stopped

    # --- environment ------------------------------------------------------------------------

    @property
    def cache_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis.port}/1" if self.redis else "dbcache://bettorsense_cache"

    @property
    def broker_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis.port}/2" if self.redis else "filesystem://"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BETTORSENSE_", "CELERY_", "DJANGO_"))}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "DJANGO_SETTINGS_MODULE": "e2e.settings",
                "DEBUG": "False",
                "SECRET_KEY": self.secrets.secret_key,
                "DATABASE_URL": self.profile.database_url,
                "CACHE_URL": self.cache_url,
                "CELERY_BROKER_URL": self.broker_url,
                "CELERY_BROKER_POLLING_INTERVAL": "0.05",
                "BETTORSENSE_ENVIRONMENT": "sandbox",
                "BETTORSENSE_CLIENT_ID": self.secrets.client_id,
                "BETTORSENSE_CLIENT_SECRET": self.secrets.client_secret,
                "BETTORSENSE_TOKEN_URL": f"http://{LOOPBACK}:{self.sandbox_port}/oauth/token",
                "BETTORSENSE_API_URL": f"http://{LOOPBACK}:{self.sandbox_port}/ci/api/rg",
                "BETTORSENSE_REFRESH_EVERY": str(self.timing.refresh_every),
                "BETTORSENSE_REFRESH_MARGIN": str(self.timing.refresh_margin),
                "BETTORSENSE_HEALTH_TOKEN": self.secrets.health_token,
                "BETTORSENSE_LOG_LEVEL": "INFO",
                "BETTORSENSE_E2E_OVERRIDES": json.dumps({**OVERRIDES, "KEY_PREFIX": self.key_prefix}),
                "BETTORSENSE_E2E_BEAT_SCHEDULE": str(self.private / "celerybeat-schedule"),
                "BETTORSENSE_E2E_QUEUE": self.queue,
            }
        )
        if self.profile.broker_dir is not None:
            env["CELERY_BROKER_DIR"] = str(self.profile.broker_dir / self.name)
        env.update(self.extra_env)
        return env

    # --- processes --------------------------------------------------------------------------

    def _start(self, name: str, argv: list[str]) -> Process:
        argv = [*self.wrappers.get(name, ()), *argv]
        process = Process(name, argv, self.env(), self.logs / f"{name}.log").start()
        self.processes[name] = process
        return process

    def start_sandbox(self) -> None:
        self._start(
            "sandbox",
            [
                PYTHON,
                "-m",
                "bettorsense.sandbox",
                "--host",
                LOOPBACK,
                "--port",
                str(self.sandbox_port),
                "--token-lifetime",
                f"{self.timing.lifetime:g}",
                "--enforce-reuse" if self.enforce_reuse else "--no-enforce-reuse",
                "--client",
                f"{self.secrets.client_id}:{self.secrets.client_secret}",
                *(arg for client_id, secret in self.extra_clients for arg in ("--client", f"{client_id}:{secret}")),
                "--log-level",
                "INFO",
            ],
        )
        wait_until("the sandbox", self._sandbox_up, 30)

    def _sandbox_up(self) -> bool:
        try:
            return self.sandbox.health().get("status") == "ok"
        except (OSError, ValueError):
            return False

    def start_worker(self) -> None:
        self._start(
            "worker",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "project",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"{self.queue}@%h",
            ],
        )

    def start_beat(self) -> None:
        self._start(
            "beat",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "project",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.private / "celerybeat-schedule"),
                "--pidfile",
                str(self.private / "beat.pid"),
            ],
        )

    def stop_beat(self) -> None:
        self.processes.pop("beat").stop()

    def start_web(self) -> None:
        self._start(
            "web",
            [
                PYTHON,
                "-m",
                "gunicorn",
                "project.wsgi:application",
                "--bind",
                f"{LOOPBACK}:{self.web_port}",
                "--workers",
                str(WEB_WORKERS),
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                "--access-logfile",
                "-",
                "--error-logfile",
                "-",
                "--log-level",
                "info",
                "--no-control-socket",  # gunicorn 27 would share ~/.gunicorn/gunicorn.ctl with every other run
            ],
        )

    def start_harvester(self) -> None:
        self._start("harvest", [PYTHON, "-m", "e2e.harvest", str(self.private / "tokens.txt")])

    def start(self) -> None:
        if self.redis is not None:
            self.redis.start()
        self.start_sandbox()
        self.start_harvester()
        self.start_worker()
        self.start_beat()
        self.start_web()
        wait_until(
            "gunicorn's workers", lambda: self.log_text("web").count("Booting worker") >= WEB_WORKERS, STARTUP_TIMEOUT
        )
        wait_until("the demo's health endpoint", self._web_up, STARTUP_TIMEOUT)
        wait_until("the Celery worker", lambda: " ready." in self.log_text("worker"), STARTUP_TIMEOUT)
        # Ready when beat's first tick, run by the worker, has put the first token in the cache.
        wait_until("the first token, from beat", lambda: self.token_stats()["issued"] >= 1, STARTUP_TIMEOUT)
        self.check_alive()

    def _web_up(self) -> bool:
        try:
            return requests.get(f"{self.web_url}/bettorsense/health/", timeout=5).status_code in (200, 503)
        except requests.RequestException:
            return False

    def check_alive(self) -> None:
        dead = {name: p.popen.returncode for name, p in self.processes.items() if p.popen and not p.running}
        if dead:
            raise RuntimeError(f"processes exited: {dead}")

    def stop(self) -> None:
        """Stop the fleet, read the sandbox's final counters (every log is complete by then), stop the rest."""
        for name in ("web", "beat", "worker", "harvest"):
            process = self.processes.pop(name, None)
            if process is not None:
                process.stop()
        sandbox = self.processes.pop("sandbox", None)
        if sandbox is not None:
            with contextlib.suppress(OSError, ValueError):
                self.final_stats = self.sandbox.stats()
            sandbox.stop()
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- observation ------------------------------------------------------------------------

    def log_text(self, name: str) -> str:
        try:
            return (self.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def token_stats(self, stats: dict[str, Any] | None = None) -> dict[str, Any]:
        """The sandbox's token counters for the fleet's client: total, issued, rejected by reason."""
        stats = self.sandbox.stats() if stats is None else stats
        entry = stats["token_requests"].get(self.secrets.client_id, {"total": 0, "issued": 0, "rejected": {}})
        return {**entry, "violations": stats["reuse_violations"]}

    def save_body(self, label: str, status: int, headers: dict[str, str] | Any, body: str | bytes) -> None:
        """Keep an HTTP answer for the leak search."""
        self._body_seq += 1
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        head = "\n".join(f"{k}: {v}" for k, v in dict(headers).items())
        path = self.bodies / f"{self._body_seq:05d}-{re.sub(r'[^a-z0-9]+', '-', label.lower())}.txt"
        path.write_text(f"{status}\n{head}\n\n{text}", errors="replace")

    def health(self, label: str = "health", *, full: bool = True) -> tuple[int, dict[str, Any]]:
        """The demo's health endpoint, with the bearer key for the full body; the answer is kept."""
        headers = {"Authorization": f"Bearer {self.secrets.health_token}"} if full else {}
        response = requests.get(f"{self.web_url}/bettorsense/health/", headers=headers, timeout=30)
        self.save_body(label, response.status_code, response.headers, response.content)
        return response.status_code, response.json()

    def status_command(self, label: str = "status") -> tuple[int, dict[str, Any] | None]:
        """``manage.py bettorsense_status --json``; output kept for the leak search."""
        done = subprocess.run(
            [PYTHON, "manage.py", "bettorsense_status", "--json"],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            timeout=120,
            check=False,
        )
        self.save_body(label, done.returncode, {}, done.stdout + b"\n" + done.stderr)
        try:
            return done.returncode, json.loads(done.stdout)
        except ValueError:
            return done.returncode, None

    def harvested_tokens(self) -> list[str]:
        try:
            return [line for line in (self.private / "tokens.txt").read_text().splitlines() if line]
        except OSError:
            return []


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout.decode()}\n{done.stderr.decode()}")
    return done.stdout.decode()


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A database of the run's own on the machine's PostgreSQL, dropped afterwards."""
    import psycopg

    name = f"bettorsense_e2e_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
