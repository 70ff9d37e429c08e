"""A real Celery worker and a real beat renew the fleet's token; the request side never asks.

``celery -A project worker`` and ``celery -A project beat`` run as separate process groups on the
test's database, cache and broker (a filesystem broker in a temporary directory by default, the
``CELERY_BROKER_URL`` one otherwise, on a queue of the test's own). The sandbox issues 60 s
tokens and enforces the reuse rule. With a 60 s token the renewal window is 6 s and beat ticks
every second: beat renews in the window's first second, the request side would renew lazily only
in its second half, so beat's task has at least 2 s to reach the worker and finish. Production has
5 s (600 s token, 30 s window, a tick every 10 s); with 30 s tokens the slack was 0.5 s, and one CI
run on a loaded machine delivered beat's task later than that.

Meanwhile this process calls ``get_access_token()`` for more than two lifetimes. It must never
request a token itself: beat's renewal lands in the first half of the window, before the request
side would renew lazily.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection

from bettorsense import telemetry, tokens
from bettorsense.conf import get_config
from bettorsense.sandbox import SandboxServer, SandboxState
from harness.fleet import (
    BASE_DIR,
    child_env,
    database_url,
    effective_lifetime,
    jwt_claims,
    sandbox_overrides,
    stop_process_group,
)

LIFETIME = 60
REFRESH_EVERY = 1.0
LOOP_FOR = 2 * LIFETIME + 3  # more than two lifetimes of calls
STARTUP_TIMEOUT = 90.0  # a Celery worker and beat on a busy two-core machine
NAMES = ("worker", "beat")


@pytest.fixture
def celery_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxState(token_lifetime=LIFETIME, enforce_reuse=True)) as server:
        yield server


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", *args],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def tail(path: Path, size: int = 8000) -> str:
    try:
        return path.read_text()[-size:]
    except OSError as err:
        return f"({err})"


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_beat_renews_the_token_and_requests_never_ask(
    celery_sandbox: SandboxServer, settings: Any, tmp_path: Path
) -> None:
    overrides = sandbox_overrides(celery_sandbox)
    settings.BETTORSENSE = overrides
    config = get_config()
    manager = tokens.get_token_manager(config)
    extra = {
        "BETTORSENSE_REFRESH_EVERY": str(REFRESH_EVERY),
        "BETTORSENSE_TEST_BEAT_SCHEDULE": str(tmp_path / "celerybeat-schedule"),
        "BETTORSENSE_TEST_CELERY_QUEUE": f"bettorsense-test-{uuid.uuid4().hex[:10]}",
    }
    if os.environ.get("CELERY_BROKER_URL", "filesystem://").startswith("filesystem://"):
        extra["CELERY_BROKER_DIR"] = str(tmp_path / "broker")
    env = child_env(overrides, database=database_url(connection.settings_dict), **extra)
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"

    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            start(
                [
                    "worker",
                    "--loglevel=INFO",
                    "--concurrency=2",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--hostname",
                    f"bstest-{uuid.uuid4().hex[:8]}@%h",
                ],
                env,
                worker_log,
            )
        )
        processes.append(
            start(
                [
                    "beat",
                    "--loglevel=INFO",
                    "--schedule",
                    str(tmp_path / "celerybeat-schedule"),
                    "--pidfile",
                    str(tmp_path / "beat.pid"),
                ],
                env,
                beat_log,
            )
        )

        # Ready when beat's first tick, run by the worker, has put a token in the cache.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        first = manager.peek()
        while first is None:
            exited = [name for name, proc in zip(NAMES, processes, strict=False) if proc.poll() is not None]
            assert not exited, f"celery {exited} exited during start-up"
            assert time.monotonic() < deadline, f"no token from beat within {STARTUP_TIMEOUT:.0f} s"
            time.sleep(0.2)
            first = manager.peek()
        ready_after = STARTUP_TIMEOUT - (deadline - time.monotonic())
        fleet = telemetry.read_token_state(config)
        assert fleet.last_renewal is not None and fleet.last_renewal.origin == "beat", fleet

        # The request side: this process, for more than two lifetimes.
        seen: dict[str, list[float]] = {}  # jti -> [first returned, last returned]
        origins: dict[str, str] = {}  # jti -> origin of the renewal that made it, as the fleet recorded
        errors: list[str] = []
        loop_end = time.time() + LOOP_FOR
        while time.time() < loop_end:
            try:
                value = tokens.get_access_token()
            except Exception as err:  # collected for the assertion
                errors.append(f"{type(err).__name__}: {err}")
                time.sleep(0.1)
                continue
            returned_at = time.time()
            jti = str(jwt_claims(value).get("jti"))
            if jti not in seen:
                seen[jti] = [returned_at, returned_at]
                renewal = telemetry.read_token_state(config).last_renewal
                origins[jti] = renewal.origin if renewal is not None else "none"
            seen[jti][1] = returned_at
            time.sleep(0.01)
        died = {name: proc.returncode for name, proc in zip(NAMES, processes, strict=True) if proc.poll() is not None}
        fleet = telemetry.read_token_state(config)
        stats = celery_sandbox.state.stats()
        records = sorted(celery_sandbox.state.tokens.values(), key=lambda record: record.issued_at)
    except BaseException:
        print(f"--- celery worker log\n{tail(worker_log)}\n--- celery beat log\n{tail(beat_log)}")
        raise
    finally:
        for proc in processes:
            stop_process_group(proc, grace=15.0)

    span = loop_end - records[0].issued_at
    lifetimes = span / effective_lifetime(celery_sandbox.state, LIFETIME)
    issued_tokens = celery_sandbox.state.tokens
    # Tokens this process was handed at or after the moment the sandbox considers them expired.
    late = {
        jti[:8]: round(last - issued_tokens[jti].expires_at, 3) if jti in issued_tokens else "unknown"
        for jti, (_, last) in seen.items()
        if jti not in issued_tokens or last >= issued_tokens[jti].expires_at
    }
    gaps = [round(nxt.issued_at - prev.expires_at, 3) for prev, nxt in itertools.pairwise(records)]
    evidence = (
        f"first token from beat after {ready_after:.1f} s; "
        f"cache={django_settings.CACHES['default']['BACKEND']} broker={os.environ.get('CELERY_BROKER_URL', 'fs')}\n"
        f"fetch_counts={manager.fetch_counts} errors={errors[:5]} origins={origins}\n"
        f"issued={stats['tokens']['issued']} requests={stats['token_requests']} "
        f"violations={stats['reuse_violations']} span={span:.1f}s lifetimes={lifetimes:.2f}\n"
        f"renewed relative to the previous token's expiry (s): {gaps}\nlate={late}\n"
        f"last_renewal={fleet.last_renewal} beat={fleet.beat_last_outcome}\n"
        f"--- celery worker log\n{tail(worker_log, 3000)}\n--- celery beat log\n{tail(beat_log, 1500)}"
    )

    print(evidence)  # shown by pytest when an assertion fails

    # A dead worker or beat is not the token code's fault, but the fleet would lose its renewals.
    # (kombu's filesystem transport can hand the worker a message file beat has not written yet:
    # "Unrecoverable error: JSONDecodeError" in the worker log, celery/kombu#1551.)
    assert died == {}, f"celery {died} exited during the test\n{evidence}"
    assert manager.fetch_counts == {}, evidence  # the request side never asked for a token
    assert errors == [], evidence
    assert stats["reuse_violations"] == 0, evidence
    assert late == {}, evidence
    assert set(origins.values()) == {"beat"}, evidence
    assert fleet.last_renewal is not None and fleet.last_renewal.origin == "beat", evidence
    assert fleet.last_renewal.outcome == "ok", evidence
    assert all(gap < 0 for gap in gaps), evidence  # each renewal happened before the previous token expired
    assert len(seen) >= math.ceil(LOOP_FOR / LIFETIME), evidence  # tokens change across lifetimes
    assert stats["tokens"]["issued"] <= lifetimes + 1, evidence
