"""One process of a test fleet: threads that ask for the access token in a loop, then a JSON report.

Run by the fleet test and by ``bench/token_fleet.py``::

    DJANGO_SETTINGS_MODULE=harness.fleet_settings BETTORSENSE_TEST_OVERRIDES='{...}' \\
        python -m harness.fleet --threads 4 --pause 0.001 [--holder shared|naive]

Protocol on stdout, one line each: ``READY <pid>`` once Django is set up; then the worker reads
one JSON line ``{"run_for": seconds}`` from stdin (EOF: exit), runs its threads for that long and
prints ``RESULT {...}``. Logs go to stderr. Token values are never printed: a token is named by
its ``jti`` claim and its fingerprint.

``--holder shared`` calls :func:`bettorsense.tokens.get_access_token` (the fleet's token).
``--holder naive`` is the baseline: the usual per-process token holder that requests a token of
its own when the one it holds is inside the same renewal window.

The parent side (environment, start, handshake, stop) is here too, for the tests and the bench.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "harness.fleet_settings"


# --- both sides ----------------------------------------------------------------------------------


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, not verified (the sandbox's tokens are JWTs; clients treat them as opaque)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- parent side ---------------------------------------------------------------------------------


def effective_lifetime(state: Any, nominal: float) -> float:
    """The mean validity of the tokens the sandbox issued: exp claim minus issue time.

    The exp claim is whole seconds, as Auth0's, so a token is valid for ``expires_in`` minus the
    fraction of the second it was issued in; the fleet (rightly) renews by that. One token per
    lifetime means one per this, not per the nominal ``expires_in``.
    """
    records = list(state.tokens.values())
    if not records:
        return nominal
    return sum(r.expires_at - r.issued_at for r in records) / len(records)


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for django-environ naming the database of ``settings_dict`` (the test DB)."""
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine == "django.db.backends.sqlite3":
        if name == ":memory:" or name.startswith("file:"):
            raise RuntimeError(f"The SQLite test database {name!r} is in memory; subprocesses cannot share it.")
        return f"sqlite:///{Path(name).resolve()}"
    if engine == "django.db.backends.postgresql":
        user = quote(str(settings_dict.get("USER") or ""), safe="")
        password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{quote(name, safe='')}"
    raise RuntimeError(f"No DATABASE_URL for engine {engine}.")


def sandbox_overrides(server: Any, **overrides: Any) -> dict[str, Any]:
    """BETTORSENSE aimed at a sandbox server, with a key prefix no other test or run shares."""
    return {
        "ENVIRONMENT": "sandbox",
        "CLIENT_ID": "demo-client",
        "CLIENT_SECRET": "demo-client-secret",
        "TOKEN_URL": server.token_url,
        "API_URL": server.api_url("integration"),
        "KEY_PREFIX": f"bsfleet-{uuid.uuid4().hex[:10]}",
        "CONNECT_TIMEOUT": 1.0,
        "READ_TIMEOUT": 2.0,
        **overrides,
    }


def child_env(overrides: dict[str, Any], *, database: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a fleet subprocess: this one's, plus settings, database and overrides.

    ``CACHE_URL`` and ``CELERY_BROKER_URL`` pass through unchanged, so children share this
    process's cache (absent: the database cache in the same database) and broker.
    """
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    env["BETTORSENSE_TEST_OVERRIDES"] = json.dumps(overrides)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE_DIR), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    if database is not None:
        env["DATABASE_URL"] = database
    env.update(extra)
    return env


def stop_process_group(proc: subprocess.Popen[Any], *, grace: float = 10.0) -> None:
    """SIGTERM the group this test started (``start_new_session=True``), wait for all of it, then SIGKILL.

    The wait is for the whole group, not its leader: a wrapper such as ``faketime`` dies on SIGTERM
    at once while the program it runs is still shutting down (a Celery beat removing its pidfile),
    and Celery's pool processes may outlive their parent.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    if not wait_for_group(proc, grace):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        wait_for_group(proc, grace)


def wait_for_group(proc: subprocess.Popen[Any], timeout: float) -> bool:
    """Whether every process of ``proc``'s group has exited (and been reaped) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        proc.poll()  # reaps the leader
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


@dataclass
class FleetProcess:
    """A worker subprocess, its stdout lines (read by a thread) and its stderr log file."""

    proc: subprocess.Popen[str]
    log_path: Path
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    ready: bool = False
    result: dict[str, Any] | None = None

    @classmethod
    def start(
        cls,
        env: dict[str, str],
        log_path: Path,
        *,
        threads: int,
        pause: float,
        holder: str,
        wrapper: tuple[str, ...] = (),
        clients: tuple[str, ...] = (),
    ) -> FleetProcess:
        """``wrapper``: argv the worker runs under, e.g. ``("faketime", "-f", "+45s")``; ``clients``:
        the credential sets its threads ask for (``--threads`` threads each; default: ``default``)."""
        log = log_path.open("w")
        try:
            proc = subprocess.Popen(
                [
                    *wrapper,
                    sys.executable,
                    "-m",
                    "harness.fleet",
                    "--threads",
                    str(threads),
                    "--pause",
                    str(pause),
                    "--holder",
                    holder,
                    *(("--clients", ",".join(clients)) if clients else ()),
                ],
                cwd=BASE_DIR,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        finally:
            log.close()
        worker = cls(proc, log_path)
        threading.Thread(target=worker._read, daemon=True).start()
        return worker

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def _drain(self) -> None:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            if line.startswith("READY"):
                self.ready = True
            elif line.startswith("RESULT "):
                self.result = json.loads(line[len("RESULT ") :])

    def go(self, run_for: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"run_for": run_for}) + "\n")
        self.proc.stdin.flush()

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-6000:]
        except OSError:
            return ""


def wait_until(workers: list[FleetProcess], predicate: str, timeout: float) -> None:
    """Wait until every worker is ``ready`` or has a ``result``; raise with their logs if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            worker._drain()
        if all(getattr(worker, predicate) for worker in workers):
            return
        dead = [w for w in workers if not getattr(w, predicate) and w.proc.poll() is not None]
        if dead:
            time.sleep(0.2)  # let the reader thread catch up with the last lines
            for worker in dead:
                worker._drain()
            dead = [w for w in dead if not getattr(w, predicate)]
            if dead:
                raise RuntimeError(describe_failure(dead, f"exited before {predicate}"))
        time.sleep(0.05)
    missing = [w for w in workers if not getattr(w, predicate)]
    raise RuntimeError(describe_failure(missing, f"no {predicate} within {timeout:.0f} s"))


def describe_failure(workers: list[FleetProcess], what: str) -> str:
    parts = [f"{len(workers)} worker(s) {what}:"]
    for worker in workers:
        parts.append(f"--- pid {worker.proc.pid} (exit {worker.proc.poll()}) stderr:\n{worker.log()}")
    return "\n".join(parts)


def run_fleet(
    env: dict[str, str],
    log_dir: Path,
    *,
    processes: int,
    threads: int,
    run_for: float,
    pause: float = 0.001,
    holder: str = "shared",
    startup_timeout: float = 60.0,
    envs: list[dict[str, str]] | None = None,
    clients: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Start ``processes`` workers, start them together once all are ready, return their reports.

    ``envs``: worker ``i`` runs with ``envs[i % len(envs)]`` instead of ``env`` (half the fleet on
    other settings, as in a rolling deploy).
    """
    workers: list[FleetProcess] = []
    try:
        for index in range(processes):
            own = envs[index % len(envs)] if envs else env
            workers.append(
                FleetProcess.start(
                    own,
                    log_dir / f"worker-{index}.log",
                    threads=threads,
                    pause=pause,
                    holder=holder,
                    clients=clients,
                )
            )
        wait_until(workers, "ready", startup_timeout)
        for worker in workers:
            worker.go(run_for)
        wait_until(workers, "result", run_for + 60.0)
        return [worker.result for worker in workers if worker.result is not None]
    finally:
        for worker in workers:
            stop_process_group(worker.proc, grace=5.0)


def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The fleet's totals: calls, errors by class, token requests by origin, tokens seen, span."""
    errors: Counter[str] = Counter()
    fetches: Counter[str] = Counter()
    seen: dict[str, dict[str, Any]] = {}
    for report in reports:
        errors.update(report["errors"])
        fetches.update(report["fetch_counts"])
        for token in report["tokens"]:
            entry = seen.get(token["jti"])
            if entry is None:
                seen[token["jti"]] = dict(token)
                continue
            entry["first_seen"] = min(entry["first_seen"], token["first_seen"])
            entry["last_seen"] = max(entry["last_seen"], token["last_seen"])
            entry["calls"] += token["calls"]
    first = [r["first_call_at"] for r in reports if r["first_call_at"] is not None]
    last = [r["last_call_at"] for r in reports if r["last_call_at"] is not None]
    return {
        "processes": len(reports),
        "calls": sum(r["calls"] for r in reports),
        "errors": dict(errors),
        "error_samples": [s for r in reports for s in r["error_samples"]][:10],
        "fetch_counts": dict(fetches),
        "tokens": seen,
        "first_call_at": min(first) if first else None,
        "last_call_at": max(last) if last else None,
        "duration": (max(last) - min(first)) if first and last else 0.0,
        "warnings": [w for r in reports for w in r.get("warnings", [])][:10],
    }


# --- worker side ---------------------------------------------------------------------------------


class NaiveTokenHolder:
    """The off-the-shelf pattern: each process holds its own token and renews it near expiry."""

    def __init__(self, token_url: str, data: dict[str, str], timeout: tuple[float, float]) -> None:
        import requests

        self.session = requests.Session()
        self.token_url = token_url
        self.data = data
        self.timeout = timeout
        self.lock = threading.Lock()
        self.value: str | None = None
        self.renew_at = 0.0
        self.fetch_counts: dict[str, int] = {}

    def get(self) -> str:
        with self.lock:
            now = time.time()
            if self.value is None or now >= self.renew_at:
                self.fetch_counts["naive"] = self.fetch_counts.get("naive", 0) + 1
                response = self.session.post(self.token_url, data=self.data, timeout=self.timeout)
                response.raise_for_status()
                body = response.json()
                lifetime = float(body["expires_in"])
                self.value = str(body["access_token"])
                # Renew when the same window as the shared manager's opens: min(30 s, 10% of lifetime).
                self.renew_at = now + lifetime - min(30.0, 0.1 * lifetime)
            return self.value


@dataclass
class _ThreadReport:
    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    tokens: dict[str, list[float]] = field(default_factory=dict)  # value -> [first, last, calls]
    first_call_at: float | None = None
    last_call_at: float | None = None


def _loop(get: Any, deadline: float, pause: float, report: _ThreadReport) -> None:
    from django.db import connections

    try:
        while True:
            called_at = time.time()
            if called_at >= deadline:
                return
            if report.first_call_at is None:
                report.first_call_at = called_at
            try:
                value = get()
            except Exception as err:  # every failure is reported, by class
                report.errors[type(err).__name__] += 1
                if len(report.error_samples) < 3:
                    report.error_samples.append(f"{type(err).__name__}: {str(err)[:200]}")
                time.sleep(max(pause, 0.01))
                continue
            returned_at = time.time()
            report.calls += 1
            report.last_call_at = returned_at
            entry = report.tokens.get(value)
            if entry is None:
                report.tokens[value] = [returned_at, returned_at, 1]
            else:
                entry[1] = returned_at
                entry[2] += 1
            if pause:
                time.sleep(pause)
    finally:
        connections.close_all()


def _merge(reports: list[_ThreadReport], fetch_counts: dict[str, int], threads: int) -> dict[str, Any]:
    from bettorsense.redaction import fingerprint

    errors: Counter[str] = Counter()
    samples: list[str] = []
    tokens: dict[str, list[float]] = {}
    for report in reports:
        errors.update(report.errors)
        samples.extend(report.error_samples)
        for value, (first, last, calls) in report.tokens.items():
            entry = tokens.setdefault(value, [first, last, 0])
            entry[0], entry[1], entry[2] = min(entry[0], first), max(entry[1], last), entry[2] + calls
    token_list = []
    for value, (first, last, calls) in sorted(tokens.items(), key=lambda item: item[1][0]):
        claims = jwt_claims(value)
        token_list.append(
            {
                "jti": str(claims.get("jti") or fingerprint(value)),
                "client_id": claims.get("azp"),
                "fingerprint": fingerprint(value),
                "iat": claims.get("iat"),
                "exp": claims.get("exp"),
                "first_seen": first,
                "last_seen": last,
                "calls": int(calls),
            }
        )
    firsts = [r.first_call_at for r in reports if r.first_call_at is not None]
    lasts = [r.last_call_at for r in reports if r.last_call_at is not None]
    return {
        "pid": os.getpid(),
        "threads": threads,
        "calls": sum(r.calls for r in reports),
        "errors": dict(errors),
        "error_samples": samples[:5],
        "fetch_counts": dict(fetch_counts),
        "tokens": token_list,
        "first_call_at": min(firsts) if firsts else None,
        "last_call_at": max(lasts) if lasts else None,
    }


class _WarningCollector(logging.Handler):
    """Keeps the app's warnings (a cache failure, a failed renewal) for the report."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < 20:
            self.messages.append(f"{record.levelname} {record.name}: {record.getMessage()[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.001, help="Sleep between two calls of a thread.")
    parser.add_argument("--holder", choices=("shared", "naive"), default="shared")
    parser.add_argument("--clients", default="default", help="Credential sets, comma-separated (shared holder).")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    import django

    django.setup()
    from django.db import connections

    from bettorsense import tokens
    from bettorsense.conf import get_config

    warnings = _WarningCollector()
    logging.getLogger("bettorsense").addHandler(warnings)
    config = get_config()
    gets: list[Any] = []
    managers: list[Any] = []
    if args.holder == "shared":
        for name in args.clients.split(","):
            managers.append(tokens.get_token_manager(get_config(name)))
            gets.append(functools.partial(tokens.get_access_token, name))
    else:
        holder = NaiveTokenHolder(
            config.token_url,
            {
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "audience": config.audience,
                "grant_type": "client_credentials",
            },
            config.timeout,
        )
        gets, managers = [holder.get], [holder]
    connections.close_all()

    print(f"READY {os.getpid()}", flush=True)
    line = sys.stdin.readline()
    if not line:
        return 1
    run_for = float(json.loads(line)["run_for"])
    deadline = time.time() + run_for
    reports = [_ThreadReport() for _ in range(args.threads * len(gets))]
    workers = [
        threading.Thread(target=_loop, args=(gets[i % len(gets)], deadline, args.pause, report), daemon=True)
        for i, report in enumerate(reports)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=run_for + 30.0)
    stuck = sum(worker.is_alive() for worker in workers)
    fetch_counts: Counter[str] = Counter()
    for manager in managers:
        fetch_counts.update(manager.fetch_counts)
    result = _merge(reports, fetch_counts, args.threads)
    result["warnings"] = warnings.messages[:5]
    if stuck:
        result["errors"]["StuckThread"] = stuck
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
