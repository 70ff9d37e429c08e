"""Clock skew with real processes: workers whose clocks run 45 s ahead and 45 s behind, under ``faketime``.

Three worker processes (``harness.fleet``) share one token on the test's database and cache,
against a sandbox on the true clock that enforces the reuse rule: one under ``faketime -f +45s``,
one under ``-45s``, one in step. Beat is not running, so the request paths renew the token
themselves. The sandbox judges, as in tests/test_token_fleet.py: no request breaks the reuse rule,
no renewal comes before the window, and no worker is handed a token the sandbox considers expired.
The fleet's telemetry shows that each skewed worker measured its own offset.

Debian's ``faketime`` package is needed. Locally, without it, the test is skipped; in CI
(``CI=true`` or ``BETTORSENSE_REQUIRE_SERVICES=1``) it fails instead.

It runs on Redis only (CI's second run): Django's database and file caches judge an entry's
expiry on each reader's own clock, so a renewal lock written by a process 45 s behind has already
expired for one 45 s ahead (README, "Clock skew").
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from bettorsense import telemetry
from bettorsense.conf import get_config
from bettorsense.sandbox import SandboxServer, SandboxState
from harness.fleet import (
    FleetProcess,
    child_env,
    database_url,
    sandbox_overrides,
    stop_process_group,
    summarise,
    wait_until,
)

FAKETIME = shutil.which("faketime")
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("BETTORSENSE_REQUIRE_SERVICES") == "1"
# Window 3 s, safety margin 0.75 s (more than the offset estimate's error, half a second plus half a
# round trip), and the sandbox allows a renewal with 6 s left.
LIFETIME = 30
WINDOW = 0.1 * LIFETIME
SKEWS = (45, -45, 0)
RUN_FOR = 2.3 * LIFETIME


@pytest.fixture
def skew_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxState(token_lifetime=LIFETIME, enforce_reuse=True)) as server:
        yield server


def faketime(skew: int) -> tuple[str, ...]:
    if FAKETIME is None:
        reason = "faketime is missing (apt-get install faketime)"
        if REQUIRED:
            pytest.fail(f"{reason} (required in CI: .ci/run installs faketime)")
        pytest.skip(reason)
    return (FAKETIME, "-f", f"{skew:+d}s") if skew else ()


def run_skewed_fleet(env: dict[str, str], log_dir: Path) -> list[dict[str, Any]]:
    wrappers = [faketime(skew) for skew in SKEWS]
    workers: list[FleetProcess] = []
    try:
        for skew, wrapper in zip(SKEWS, wrappers, strict=True):
            log = log_dir / f"worker{skew:+d}.log"
            workers.append(FleetProcess.start(env, log, threads=2, pause=0.01, holder="shared", wrapper=wrapper))
        wait_until(workers, "ready", 60.0)
        for worker in workers:
            worker.go(RUN_FOR)
        wait_until(workers, "result", RUN_FOR + 60.0)
        return [worker.result or {} for worker in workers]
    finally:
        for worker in workers:
            stop_process_group(worker.proc, grace=5.0)


@pytest.mark.fleet
@pytest.mark.django_db(transaction=True)
def test_workers_a_minute_off_share_the_token_on_the_servers_clock(skew_sandbox: SandboxServer, tmp_path: Path):
    faketime(1)  # fails or skips without faketime, before anything starts
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        pytest.skip("needs a cache whose entries expire on the server's clock (CACHE_URL=redis://...)")
    overrides = sandbox_overrides(skew_sandbox, CLOCK_SKEW_WARN=5.0)
    # faketime shifts the monotonic clock too: with FAKETIME_DONT_FAKE_MONOTONIC, time.sleep fails (EINVAL).
    env = child_env(overrides, database=database_url(connection.settings_dict))

    reports = run_skewed_fleet(env, tmp_path)

    state = skew_sandbox.state
    stats = state.stats()
    late = []
    for report, skew in zip(reports, SKEWS, strict=True):
        for token in report["tokens"]:
            record = state.tokens.get(token["jti"])
            # The worker stamped its calls on its own clock: faketime shifts it by exactly ``skew``.
            if record is None or token["last_seen"] - skew >= record.expires_at:
                late.append({"skew": skew, **token})
    issued = sorted(state.tokens.values(), key=lambda record: record.issued_at)
    early = [
        round(before.expires_at - after.issued_at, 2)
        for before, after in itertools.pairwise(issued)
        if before.expires_at - after.issued_at > WINDOW
    ]
    with override_settings(BETTORSENSE=overrides):
        clocks = telemetry.read_process_clocks(get_config(), since=0.0)
    evidence = json.dumps(
        {
            "fleet": {k: v for k, v in summarise(reports).items() if k != "tokens"},
            "sandbox": {key: stats[key] for key in ("tokens", "token_requests", "reuse_violations")},
            "late": late,
            "renewed_early": early,
            "clocks": [c.__dict__ for c in clocks],
        },
        indent=1,
        default=str,
    )
    print(evidence)  # shown by pytest when an assertion fails

    assert len(reports) == len(SKEWS) and all(r["calls"] > 0 for r in reports), evidence
    # Every worker called for the whole run (a thread that died early would leave a short span).
    assert all(r["last_call_at"] - r["first_call_at"] > 0.9 * RUN_FOR for r in reports), evidence
    assert all(r["errors"] == {} for r in reports), evidence
    assert stats["reuse_violations"] == 0, evidence
    assert late == [], evidence
    assert early == [], evidence
    assert len(issued) >= 2, evidence  # the run crossed at least one renewal
    skews = sorted(round(c.skew) for c in clocks if abs(c.skew) > 1)
    assert len(skews) == 2 and skews[0] in (-46, -45, -44) and skews[1] in (44, 45, 46), evidence
