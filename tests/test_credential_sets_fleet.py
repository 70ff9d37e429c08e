"""Two credential sets, many OS processes: one token per set per lifetime, a set added mid-run.

The first wave of worker processes knows only the ``default`` set. Halfway through, a second wave
starts with settings that add ``brand-b`` (a deploy that adds a brand) and asks for both sets'
tokens. The sandbox enforces Sportradar's reuse rule per client and is the judge: no violation, no
error, and per client at most one token per lifetime (+1) of the time that client was asked for.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from bettorsense.sandbox import SandboxServer, SandboxState
from harness.fleet import child_env, database_url, effective_lifetime, run_fleet, sandbox_overrides, summarise

LIFETIME = 4
PROCESSES = 3  # per wave
THREADS = 2  # per process and set
# As in test_token_fleet: a renewed token lives about LIFETIME - 0.9 s; the bound holds for runs
# of up to about 5.7 lifetimes, and the first wave runs 5.4.
RUN_FOR = 5.4 * (LIFETIME - 0.9)
BRAND_B_ID = "brand-b-fleet"
BRAND_B_SECRET = "brand-b-fleet-secret-0cc175b9"


@pytest.fixture
def fleet_sandbox() -> Iterator[SandboxServer]:
    state = SandboxState(token_lifetime=LIFETIME, enforce_reuse=True)
    state.add_client(BRAND_B_ID, BRAND_B_SECRET, bookmakers=[(777, 888)])
    with SandboxServer(state) as server:
        yield server


@pytest.mark.fleet
@pytest.mark.django_db(transaction=True)
def test_two_sets_one_token_each_per_lifetime_with_a_set_added_mid_run(
    fleet_sandbox: SandboxServer, tmp_path: Path
) -> None:
    database = database_url(connection.settings_dict)
    first_settings = sandbox_overrides(fleet_sandbox)
    second_settings = {
        **first_settings,
        "CLIENTS": {"brand-b": {"CLIENT_ID": BRAND_B_ID, "CLIENT_SECRET": BRAND_B_SECRET}},
    }
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    first_reports: list[dict[str, Any]] = []
    first_failure: list[BaseException] = []

    def first_wave() -> None:
        try:
            first_reports.extend(
                run_fleet(
                    child_env(first_settings, database=database),
                    first_dir,
                    processes=PROCESSES,
                    threads=THREADS,
                    run_for=RUN_FOR,
                )
            )
        except BaseException as err:  # re-raised in the test's thread
            first_failure.append(err)

    wave = threading.Thread(target=first_wave)
    wave.start()
    # The second wave starts once the first has been served a token: the set is added mid-run.
    second_reports: list[dict[str, Any]] = []
    waited = 0
    while not fleet_sandbox.state.tokens and waited < 600 and wave.is_alive():
        threading.Event().wait(0.1)
        waited += 1
    second_reports = run_fleet(
        child_env(second_settings, database=database),
        second_dir,
        processes=PROCESSES,
        threads=THREADS,
        run_for=RUN_FOR / 2,
        clients=("default", "brand-b"),
    )
    wave.join(timeout=RUN_FOR + 120)
    if first_failure:
        raise first_failure[0]

    reports = first_reports + second_reports
    fleet = summarise(reports)
    second = summarise(second_reports)
    stats = fleet_sandbox.state.stats()
    lifetime = effective_lifetime(fleet_sandbox.state, LIFETIME)
    issued = Counter(record.client_id for record in fleet_sandbox.state.tokens.values())
    handed_out = Counter(token["client_id"] for token in fleet["tokens"].values())
    evidence = json.dumps(
        {
            "issued": issued,
            "handed_out": handed_out,
            "duration": round(fleet["duration"], 3),
            "second_wave_duration": round(second["duration"], 3),
            "lifetime": round(lifetime, 3),
            "errors": fleet["errors"],
            "error_samples": fleet["error_samples"],
            "fetch_counts": fleet["fetch_counts"],
            "sandbox": {key: stats[key] for key in ("tokens", "token_requests", "reuse_violations")},
        },
        indent=1,
    )
    print(evidence)

    assert len(reports) == 2 * PROCESSES, evidence
    assert all(report["calls"] > 0 for report in reports), evidence
    assert fleet["errors"] == {}, evidence
    assert stats["reuse_violations"] == 0, evidence
    assert issued["demo-client"] <= fleet["duration"] / lifetime + 1, evidence
    assert 1 <= issued[BRAND_B_ID] <= second["duration"] / lifetime + 1, evidence
    assert set(issued) == {"demo-client", BRAND_B_ID}, evidence
    # Every token the sandbox issued was handed out, and only to the set it was issued to.
    assert handed_out == issued, evidence
    assert sum(fleet["fetch_counts"].values()) == sum(issued.values()), evidence
