"""Many OS processes, many threads, one token: the fleet's promise, end to end.

Eight worker processes (``tests/fleet_worker.py``), four threads each, ask for the access token
in a loop for more than five token lifetimes, on the test's database and cache, against a
sandbox that enforces Sportradar's reuse rule with a 4 s token. Beat is not running, so the
request paths renew the token themselves, under the fleet lock.

The sandbox is the judge: how many tokens it issued, whether a request broke the reuse rule,
and, from its record of every token, whether any worker was handed a token that had expired.
That record, not the JWT's ``exp`` claim, is what the sandbox enforces: the claim is whole
seconds, floored like Auth0's, so it can be up to a second earlier than ``issued + expires_in``.
The evidence shows by how much the claim was overrun (``max_seconds_after_exp_claim``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connection

from bettorsense.sandbox import SandboxServer, SandboxState
from harness.fleet import child_env, database_url, effective_lifetime, run_fleet, sandbox_overrides, summarise

LIFETIME = 4  # seconds; the renewal window is then 0.4 s and the reuse threshold 0.8 s
PROCESSES = 8
THREADS = 4
# More than five lifetimes. A token's exp claim is whole seconds, as Auth0's, so a token is valid
# for LIFETIME minus the fraction of the second it was issued in; renewals come just before a
# whole second, so a renewed token lives about LIFETIME - 0.9 s, and the bound counts lifetimes by
# what the sandbox issued (effective_lifetime). The request side renews in the second half of a
# window of 10% of that, so a token serves about 0.95 of its life: N tokens cover 0.95·N
# lifetimes, and "at most lifetimes + 1" holds for runs of up to about 5.7 lifetimes. This one is 5.4.
RUN_FOR = 5.4 * (LIFETIME - 0.9)


def late_tokens(fleet: dict[str, Any], server: SandboxServer) -> list[dict[str, Any]]:
    """Tokens some worker was handed at or after the moment the sandbox considers them expired."""
    late = []
    for jti, seen in fleet["tokens"].items():
        record = server.state.tokens.get(jti)
        if record is None:
            late.append({**seen, "problem": "not issued by this sandbox"})
        elif seen["last_seen"] >= record.expires_at:
            late.append({**seen, "problem": f"returned {seen['last_seen'] - record.expires_at:.3f} s after expiry"})
    return late


def claim_lateness(fleet: dict[str, Any]) -> float:
    """The most seconds a token was handed out after its JWT ``exp`` claim (negative: never)."""
    return max(
        (t["last_seen"] - t["exp"] for t in fleet["tokens"].values() if t["exp"] is not None), default=float("-inf")
    )


def db_cache_entries() -> int | None:
    """Rows in the database cache's table (it culls a third of them past MAX_ENTRIES), else None."""
    cache = caches["default"]
    if not isinstance(cache, DatabaseCache):
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(cache._table)}")  # noqa: S608
        return int(cursor.fetchone()[0])


def token_timeline(fleet: dict[str, Any]) -> list[dict[str, Any]]:
    """When each token was first and last handed out, and its ``exp`` claim (seconds mod 1000)."""
    return [
        {
            "jti": jti[:8],
            "first": round(t["first_seen"] % 1000, 3),
            "last": round(t["last_seen"] % 1000, 3),
            "exp": t["exp"] % 1000 if t["exp"] else None,
            "calls": t["calls"],
        }
        for jti, t in sorted(fleet["tokens"].items(), key=lambda item: item[1]["first_seen"])
    ]


@pytest.fixture
def fleet_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxState(token_lifetime=LIFETIME, enforce_reuse=True)) as server:
        yield server


@pytest.mark.fleet
@pytest.mark.django_db(transaction=True)
def test_fleet_of_processes_shares_one_token_per_lifetime(fleet_sandbox: SandboxServer, tmp_path: Path) -> None:
    env = child_env(sandbox_overrides(fleet_sandbox), database=database_url(connection.settings_dict))
    cache_entries = db_cache_entries()

    reports = run_fleet(env, tmp_path, processes=PROCESSES, threads=THREADS, run_for=RUN_FOR)

    fleet = summarise(reports)
    stats = fleet_sandbox.state.stats()
    issued = stats["tokens"]["issued"]
    lifetimes = fleet["duration"] / effective_lifetime(fleet_sandbox.state, LIFETIME)
    late = late_tokens(fleet, fleet_sandbox)
    evidence = json.dumps(
        {
            "cache": settings.CACHES["default"]["BACKEND"],
            "db_cache_entries_before": cache_entries,
            "database": connection.settings_dict["ENGINE"],
            "duration": round(fleet["duration"], 3),
            "lifetimes": round(lifetimes, 3),
            "issued": issued,
            "calls": fleet["calls"],
            "errors": fleet["errors"],
            "error_samples": fleet["error_samples"],
            "warnings": fleet["warnings"],
            "fetch_counts": fleet["fetch_counts"],
            "late": late,
            "max_seconds_after_exp_claim": round(claim_lateness(fleet), 3),
            "sandbox": {key: stats[key] for key in ("tokens", "token_requests", "reuse_violations")},
            "tokens": token_timeline(fleet),
        },
        indent=1,
    )
    print(evidence)  # shown by pytest when an assertion fails

    assert len(reports) == PROCESSES, evidence
    assert all(report["calls"] > 0 for report in reports), evidence
    assert fleet["errors"] == {}, evidence
    assert stats["reuse_violations"] == 0, evidence
    assert late == [], evidence
    assert issued <= lifetimes + 1, evidence
    # Every token request the fleet made was answered with a token, and only requests made them.
    assert sum(fleet["fetch_counts"].values()) == issued, evidence
    assert set(fleet["fetch_counts"]) == {"request"}, evidence
    assert len(fleet["tokens"]) == issued, evidence
