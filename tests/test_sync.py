"""The daily sync into the local store, against the sandbox, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from bettorsense.exceptions import PlayerNotFound, ServiceUnavailable, SyncAlreadyRunning
from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import RiskProfileChange, SyncRun
from bettorsense.profiles import RiskBand
from bettorsense.sandbox import Fault
from bettorsense.services import get_player_risk_profile, iter_risk_profiles
from bettorsense.signals import risk_band_changed
from bettorsense.sync import run_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def band_changes():
    seen: list[tuple[str, RiskBand, RiskBand, bool, int]] = []

    def receiver(sender, profile, previous_band, new_band, **kwargs):
        # After the commit: another connection sees the new band already.
        stored_band = StoredProfile.objects.get(pk=profile.pk).band
        seen.append((profile.account_id, previous_band, new_band, connection.in_atomic_block, stored_band))

    risk_band_changed.connect(receiver)
    yield seen
    risk_band_changed.disconnect(receiver)


def vendor_scores() -> dict[str, float]:
    return {p.account_id: p.risk_score for p in iter_risk_profiles()}


def test_full_then_incremental_sync(configure, sandbox, band_changes):
    first = run_sync()
    assert first.status == SyncRun.Status.SUCCEEDED and first.mode == SyncRun.Mode.FULL
    assert first.pages == 5 and first.checkpoint_page == 5
    before = vendor_scores()
    assert StoredProfile.objects.count() == first.profiles_seen == first.profiles_created == len(before)
    assert RiskProfileChange.objects.count() == len(before)  # each player's first point of the trend
    assert band_changes == []

    sandbox.state.advance_day()
    after = vendor_scores()
    rescored = {account for account, score in after.items() if before[account] != score}
    assert 200 < len(rescored) < 1000
    sandbox.state.requests.clear()
    second = run_sync()
    assert second.mode == SyncRun.Mode.INCREMENTAL and second.watermark_from is not None
    assert second.profiles_changed == len(rescored)
    assert second.profiles_created == 0
    assert second.profiles_seen < len(after) / 4  # only the changed players, and the overlap
    assert all(r.query.get("changedSince") for r in sandbox.state.requests if r.route == "batch")
    stored = dict(StoredProfile.objects.values_list("account_id", "risk_score"))
    assert stored == after
    moved = {a for a in rescored if RiskBand.for_score(before[a]) != RiskBand.for_score(after[a])}
    assert moved and sorted(c[0] for c in band_changes) == sorted(moved)
    for account, previous, new, in_atomic, stored_band in band_changes:
        assert previous == RiskBand.for_score(before[account]) and new == RiskBand.for_score(after[account])
        assert not in_atomic and stored_band == new
    assert RiskProfileChange.objects.count() == len(before) + len(rescored)


def test_unchanged_rerun_changes_nothing(configure, sandbox, band_changes):
    run_sync()
    again = run_sync()
    assert again.status == SyncRun.Status.SUCCEEDED
    assert again.profiles_changed == again.profiles_created == 0
    again_full = run_sync(full=True)
    assert again_full.profiles_seen > 4000 and again_full.profiles_changed == 0
    assert band_changes == []


def test_crash_mid_sync_then_rerun_resumes_without_duplicates(configure, sandbox):
    configure(MAX_RETRIES=0)
    sandbox.state.add_fault(Fault(target="batch", kind="status", status=500, page=3, times=1))
    with pytest.raises(ServiceUnavailable):
        run_sync()
    crashed = SyncRun.objects.latest()
    assert crashed.status == SyncRun.Status.FAILED and crashed.checkpoint_page == 2
    assert "ServiceUnavailable" in crashed.error
    assert StoredProfile.objects.count() == crashed.profiles_seen == 2000
    resumed = run_sync()
    assert resumed.status == SyncRun.Status.SUCCEEDED and resumed.start_page == 3
    expected = vendor_scores()
    assert StoredProfile.objects.count() == len(expected)
    assert dict(StoredProfile.objects.values_list("account_id", "risk_score")) == expected
    assert RiskProfileChange.objects.count() == len(expected)


def test_two_syncs_at_once_one_is_refused(configure, sandbox):
    # The first run holds the lock and stops after its first page until the second run was refused.
    first_page_done, second_refused = threading.Event(), threading.Event()
    outcomes: list[object] = []

    def hold_after_first_page(run: SyncRun) -> None:
        first_page_done.set()
        assert second_refused.wait(10), "the second sync never ran"

    def first_sync() -> None:
        try:
            outcomes.append(run_sync(progress=hold_after_first_page))
        finally:
            connections.close_all()

    first = threading.Thread(target=first_sync)
    first.start()
    assert first_page_done.wait(10)
    with pytest.raises(SyncAlreadyRunning):
        run_sync()
    second_refused.set()
    first.join(timeout=30)
    assert [type(o).__name__ for o in outcomes] == ["SyncRun"]
    assert SyncRun.objects.count() == 1


def test_since_overrides_the_watermark(configure, sandbox):
    run_sync()
    day = sandbox.state.advance_day()
    run = run_sync(since=day)
    assert run.watermark_from.date() == day
    assert 200 < run.profiles_seen < 1000


def test_store_answers_when_its_copy_is_current(configure, sandbox):
    run_sync()
    sandbox.state.requests.clear()
    profile = get_player_risk_profile("player_20")
    assert profile.source == "store"
    assert [r for r in sandbox.state.requests if r.route == "profile"] == []
    assert profile == get_player_risk_profile("player_20", fresh=True)  # equal but for the source
    with pytest.raises(PlayerNotFound):
        get_player_risk_profile("nobody")  # not in the store: the API answers
    assert [r.account_id for r in sandbox.state.requests if r.route == "profile"] == ["player_20", "nobody"]


def test_sync_command(configure, sandbox):
    out = StringIO()
    call_command("bettorsense_sync", stdout=out)
    assert "succeeded" in out.getvalue() and "\r" not in out.getvalue()  # no progress bar off a terminal
    out = StringIO()
    call_command("bettorsense_sync", "--full", stdout=out)
    assert "Full sync succeeded" in out.getvalue()
    configure(MAX_RETRIES=0)
    sandbox.state.add_fault(Fault(target="batch", kind="status", status=503))
    with pytest.raises(CommandError, match="ServiceUnavailable"):
        call_command("bettorsense_sync", "--full", stdout=StringIO())
    with pytest.raises(CommandError, match="not an ISO-8601"):
        call_command("bettorsense_sync", "--since", "last tuesday", stdout=StringIO())
