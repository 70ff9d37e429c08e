"""Migration 0004 on a store written before it: duplicates cleared for the new constraints, history filled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("bettorsense", "0003_action_permissions")]
AFTER = [("bettorsense", "0004_history_and_sync_guard")]
DAY = datetime(2026, 11, 30, 0, 14, tzinfo=UTC)
LATER = datetime(2026, 12, 1, 0, 14, tzinfo=UTC)


def migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.fixture
def old_apps() -> Iterator[object]:
    apps = migrate(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes())


def test_0004_clears_what_the_constraints_refuse_and_fills_the_history(old_apps):
    profile_model = old_apps.get_model("bettorsense", "PlayerRiskProfile")
    change_model = old_apps.get_model("bettorsense", "RiskProfileChange")
    run_model = old_apps.get_model("bettorsense", "SyncRun")
    factors = [{"key": 3, "name": "Losses", "score": 2.5}]
    profile = profile_model.objects.create(
        bookmaker_id=1,
        sub_bookmaker_id=2,
        account_id="player_1",
        risk_score=97,
        risk_category=3,
        band=3,
        percentile=96.5,
        category_scores=factors,
        last_updated=LATER,
        fetched_at=LATER,
        changed_at=LATER,
    )
    common = {"profile": profile, "recorded_at": LATER}
    old = change_model.objects.create(**common, risk_score=40, band=0, last_updated=DAY)
    first = change_model.objects.create(
        **common, risk_score=97, band=3, previous_score=40, previous_band=0, last_updated=LATER
    )
    change_model.objects.create(**common, risk_score=97, band=3, previous_score=40, previous_band=0, last_updated=LATER)
    run = {"mode": "full", "started_at": DAY, "bookmaker_id": 1, "sub_bookmaker_id": 2, "status": "running"}
    stuck = run_model.objects.create(**run)
    newest = run_model.objects.create(**run)

    new_apps = migrate(AFTER)

    changes = new_apps.get_model("bettorsense", "RiskProfileChange").objects.order_by("id")
    assert [c.id for c in changes] == [old.id, first.id]  # the second record of one version is gone
    latest = changes.get(id=first.id)
    assert (latest.percentile, latest.risk_category, latest.category_scores) == (96.5, 3, factors)
    assert changes.get(id=old.id).percentile is None  # nothing known about an older version
    runs = new_apps.get_model("bettorsense", "SyncRun").objects
    assert runs.get(id=stuck.id).status == "failed" and runs.get(id=newest.id).status == "running"
