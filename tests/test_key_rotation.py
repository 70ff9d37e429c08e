"""A rolling SECRET_KEY rotation, with real processes: half the fleet on the new key, half on the old.

The new half runs ``SECRET_KEY=new`` with the old key in ``SECRET_KEY_FALLBACKS``; the old half
runs ``SECRET_KEY=old`` alone, as processes not yet redeployed do. The sandbox enforces the
vendor's reuse rule, so a process that could not read the fleet's token would ask for another and
be refused. The promise: one token per lifetime, as without a rotation, no refusal, no error.

The control runs the new half without the fallback: it cannot read the old half's token, nor the
old half the new one's, so the fleet asks for more tokens than it needs and is refused. It shows
the first test would fail if the fallback were ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from bettorsense.sandbox import SandboxServer, SandboxState
from harness.fleet import child_env, database_url, effective_lifetime, run_fleet, sandbox_overrides, summarise

LIFETIME = 4  # seconds: several renewals, each by whichever half gets there first
PROCESSES = 4  # two on each key
THREADS = 2
RUN_FOR = 4.5 * (LIFETIME - 0.9)  # 4.5 lifetimes, inside the 5.7 for which "lifetimes + 1" holds (test_token_fleet)
OLD_KEY = "rotation-old-key-" + "o" * 40
NEW_KEY = "rotation-new-key-" + "n" * 40


@pytest.fixture
def fleet_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxState(token_lifetime=LIFETIME, enforce_reuse=True)) as server:
        yield server


def run_rotation(server: SandboxServer, tmp_path: Path, *, new_fallbacks: str) -> dict[str, Any]:
    overrides = sandbox_overrides(server)
    database = database_url(connection.settings_dict)
    new = child_env(overrides, database=database, SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=new_fallbacks)
    old = child_env(overrides, database=database, SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS="")
    reports = run_fleet(new, tmp_path, processes=PROCESSES, threads=THREADS, run_for=RUN_FOR, envs=[new, old])
    fleet = summarise(reports)
    stats = server.state.stats()
    return {
        "reports": len(reports),
        "calls": fleet["calls"],
        "errors": fleet["errors"],
        "error_samples": fleet["error_samples"],
        "fetch_counts": fleet["fetch_counts"],
        "issued": stats["tokens"]["issued"],
        "token_requests": stats["token_requests"],
        "reuse_violations": stats["reuse_violations"],
        "lifetimes": fleet["duration"] / effective_lifetime(server.state, LIFETIME),
    }


@pytest.mark.fleet
@pytest.mark.django_db(transaction=True)
def test_half_the_fleet_on_the_new_key_keeps_one_token_per_lifetime(fleet_sandbox, tmp_path):
    outcome = run_rotation(fleet_sandbox, tmp_path, new_fallbacks=OLD_KEY)
    evidence = json.dumps(outcome, indent=1, default=str)
    print(evidence)  # shown by pytest when an assertion fails

    assert outcome["reports"] == PROCESSES, evidence
    assert outcome["errors"] == {}, evidence
    assert outcome["reuse_violations"] == 0, evidence
    assert outcome["issued"] <= outcome["lifetimes"] + 1, evidence
    assert sum(outcome["fetch_counts"].values()) == outcome["issued"], evidence  # no request refused


@pytest.mark.fleet
@pytest.mark.django_db(transaction=True)
def test_control_without_the_fallback_the_halves_cannot_share(fleet_sandbox, tmp_path):
    outcome = run_rotation(fleet_sandbox, tmp_path, new_fallbacks="")
    evidence = json.dumps(outcome, indent=1, default=str)
    print(evidence)

    refused_or_extra = outcome["reuse_violations"] + sum(outcome["errors"].values())
    assert refused_or_extra > 0 or outcome["issued"] > outcome["lifetimes"] + 1, evidence
