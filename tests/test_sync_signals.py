"""Who the sync signals, and that each change is signalled once: over the sandbox, on SQLite and PostgreSQL.

Races are forced, not hoped for: a run is held in its progress callback (after a page committed)
while the other run works, and "the cache lock was lost" or "the run's process went silent" are
made true by deleting the lock entry and by dating the run's heartbeat in the past.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import IntegrityError, connections, transaction

from bettorsense import factors
from bettorsense.conf import get_config
from bettorsense.exceptions import ServiceUnavailable, SyncAlreadyRunning
from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import RiskProfileChange, SyncRun
from bettorsense.profiles import RiskBand, RiskProfile
from bettorsense.sandbox import Fault
from bettorsense.services import bookmaker_ids, iter_risk_profiles
from bettorsense.signals import risk_band_changed
from bettorsense.sync import _SyncLock, run_sync

pytestmark = pytest.mark.django_db(transaction=True)

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class Signalled(list[dict[str, Any]]):
    def accounts(self) -> Counter[str]:
        return Counter(call["account"] for call in self)


@pytest.fixture
def signalled() -> Iterator[Signalled]:
    calls = Signalled()
    lock = threading.Lock()

    def receiver(sender: Any, profile: StoredProfile, previous_band: Any, new_band: Any, **kwargs: Any) -> None:
        with lock:
            calls.append(
                {
                    "account": profile.account_id,
                    "previous": previous_band,
                    "new": new_band,
                    "change": kwargs["change"],
                }
            )

    risk_band_changed.connect(receiver)
    yield calls
    risk_band_changed.disconnect(receiver)


def vendor_profiles() -> dict[str, RiskProfile]:
    return {p.account_id: p for p in iter_risk_profiles()}


def moved_accounts(before: dict[str, RiskProfile], after: dict[str, RiskProfile]) -> set[str]:
    return {a for a, p in after.items() if a in before and before[a].band != p.band}


def lose_the_cache_lock() -> None:
    """What an eviction or a TTL lapse does to the sync's cache lock."""
    config = get_config()
    lock = _SyncLock(config, *bookmaker_ids(config, None, None)).lock
    lock.cache.delete(lock.key)


class HeldRun:
    """A sync in a thread that stops after its first committed page until released."""

    def __init__(self, on_hold: Callable[[SyncRun], None] = lambda run: None) -> None:
        self.held, self.release = threading.Event(), threading.Event()
        self.outcome: list[object] = []
        self.on_hold = on_hold
        self.thread = threading.Thread(target=self._run)

    def _progress(self, run: SyncRun) -> None:
        if not self.held.is_set():
            self.on_hold(run)
            self.held.set()
            assert self.release.wait(60), "the test never released the held run"

    def _run(self) -> None:
        try:
            self.outcome.append(run_sync(progress=self._progress))
        except BaseException as err:  # reported to the test through outcome
            self.outcome.append(err)
        finally:
            self.held.set()
            connections.close_all()

    def __enter__(self) -> HeldRun:
        self.thread.start()
        assert self.held.wait(60), "the held run never committed a page"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive()


def test_a_player_first_seen_after_the_initial_load_is_signalled_once(configure, sandbox, signalled):
    initial = run_sync()
    assert initial.initial_load and initial.signals_sent == 0
    assert signalled == []  # no intervention storm on the first load
    before = vendor_profiles()

    sandbox.state.advance_day()
    added = sandbox.state.add_players(150)
    after = vendor_profiles()
    new_players = {a for a in added if a in after}  # every 97th and 89th index has no profile
    assert len(new_players) == 147  # player_5044, 5073 and 5141 have none
    very_high = {a for a in new_players if after[a].band == RiskBand.VERY_HIGH}
    assert very_high  # the sandbox deals 2 in every 100 players a very high score

    run = run_sync()
    assert run.mode == SyncRun.Mode.INCREMENTAL and not run.initial_load
    assert run.profiles_created == len(new_players)
    assert max(signalled.accounts().values()) == 1
    first_seen = {c["account"] for c in signalled if c["previous"] is None}
    assert first_seen == new_players and very_high <= first_seen
    moved = {c["account"]: (c["previous"], c["new"]) for c in signalled if c["previous"] is not None}
    assert set(moved) == moved_accounts(before, after)
    assert all(moved[a] == (before[a].band, after[a].band) for a in moved)
    assert run.signals_sent == len(signalled)
    for call in signalled:
        change = call["change"]
        assert isinstance(change, RiskProfileChange) and change.sync_run_id == run.pk
        assert call["new"] == RiskBand(change.band) == after[call["account"]].band

    signalled.clear()
    again = run_sync()
    assert again.status == SyncRun.Status.SUCCEEDED and again.profiles_seen > 0
    assert signalled == [] and again.signals_sent == 0


def test_the_history_keeps_what_the_vendor_said(configure, sandbox):
    run_sync()
    sandbox.state.advance_day()
    run_sync()
    vendor = vendor_profiles()
    rescored = RiskProfileChange.objects.exclude(previous_band=None).select_related("profile")
    assert rescored.count() > 200
    for change in rescored:
        said = vendor[change.profile.account_id]
        assert change.risk_score == said.risk_score and change.band == said.band
        assert change.risk_category == said.risk_category and change.percentile == said.percentile
        assert change.last_updated == said.last_updated
        assert change.category_scores == factors.to_json(said.category_scores) and len(change.category_scores) == 7
        assert factors.from_json(change.category_scores) == said.category_scores


def test_the_initial_load_signals_everyone_when_configured(configure, sandbox, signalled):
    configure(SIGNAL_INITIAL_LOAD=True)
    run = run_sync()
    assert run.initial_load and run.signals_sent == run.profiles_created == len(signalled)
    assert set(signalled.accounts().values()) == {1}
    assert {c["previous"] for c in signalled} == {None}
    signalled.clear()
    run_sync(full=True)
    assert signalled == []


def test_an_initial_load_resumed_after_a_crash_is_still_the_initial_load(configure, sandbox, signalled):
    configure(MAX_RETRIES=0)
    sandbox.state.add_fault(Fault(target="batch", kind="status", status=500, page=3, times=1))
    with pytest.raises(ServiceUnavailable):
        run_sync()
    resumed = run_sync()
    assert resumed.start_page == 3 and resumed.initial_load
    assert signalled == []
    assert StoredProfile.objects.count() == RiskProfileChange.objects.count() == len(vendor_profiles())


def test_without_the_cache_lock_the_database_refuses_a_second_run(configure, sandbox, signalled):
    run_sync()
    before = vendor_profiles()
    sandbox.state.advance_day()
    with HeldRun() as first:
        lose_the_cache_lock()
        with pytest.raises(SyncAlreadyRunning, match="database"):
            run_sync()
        assert SyncRun.objects.filter(status=SyncRun.Status.RUNNING).count() == 1
    (done,) = first.outcome
    assert isinstance(done, SyncRun) and done.status == SyncRun.Status.SUCCEEDED
    assert SyncRun.objects.count() == 2  # the initial load and the run that worked: the refused one left no row
    assert set(signalled.accounts().values()) == {1}
    assert set(signalled.accounts()) == moved_accounts(before, vendor_profiles())


def test_an_abandoned_run_is_reclaimed_and_its_late_page_commits_nothing(configure, sandbox, signalled):
    configure(BATCH_PAGE_SIZE=100)
    sandbox.state.set_config(page_size=100)
    run_sync()
    before = vendor_profiles()
    sandbox.state.advance_day()
    after = vendor_profiles()

    def go_silent(run: SyncRun) -> None:
        # Its process looks dead: no page committed for longer than SYNC_LOCK_TTL, and no cache lock.
        SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=LONG_AGO)
        lose_the_cache_lock()

    with HeldRun(go_silent) as silent:
        taker = run_sync()
        assert taker.status == SyncRun.Status.SUCCEEDED and taker.start_page == 2  # resumed after its page 1
    (late,) = silent.outcome
    assert isinstance(late, SyncAlreadyRunning) and "taken over" in str(late)
    abandoned = SyncRun.objects.exclude(pk=taker.pk).get(mode=SyncRun.Mode.INCREMENTAL)
    assert abandoned.status == SyncRun.Status.FAILED and abandoned.error.startswith("Abandoned")
    assert abandoned.checkpoint_page == 1  # the page it tried after the take-over was rolled back
    assert dict(StoredProfile.objects.values_list("account_id", "risk_score")) == {
        a: p.risk_score for a, p in after.items()
    }
    assert set(signalled.accounts().values()) == {1}
    assert set(signalled.accounts()) == moved_accounts(before, after)
    assert abandoned.signals_sent + taker.signals_sent == len(signalled)
    signalled.clear()
    run_sync()
    assert signalled == []


def test_a_version_already_recorded_is_neither_recorded_nor_signalled_again(configure, sandbox, signalled):
    run_sync()
    before = vendor_profiles()
    sandbox.state.advance_day()
    run_sync()
    moved = sorted(moved_accounts(before, vendor_profiles()))
    assert moved and len(signalled) == len(moved)
    # A re-run after a crash that lost the profile's write but kept its change row: the store looks
    # one version behind again, for a version whose change was already recorded and signalled.
    account = moved[0]
    StoredProfile.objects.filter(account_id=account).update(
        risk_score=before[account].risk_score, band=before[account].band
    )
    rows = RiskProfileChange.objects.filter(profile__account_id=account).count()
    signalled.clear()
    rerun = run_sync(full=True)
    assert rerun.profiles_changed == 1  # the store was brought back to the vendor's version
    assert StoredProfile.objects.get(account_id=account).band == vendor_profiles()[account].band
    assert RiskProfileChange.objects.filter(profile__account_id=account).count() == rows
    assert signalled == [] and rerun.signals_sent == 0


def test_the_database_holds_one_running_run_per_pair(configure, sandbox):
    fields = {"mode": "full", "started_at": LONG_AGO, "bookmaker_id": 1, "sub_bookmaker_id": 1}
    SyncRun.objects.create(**fields)
    SyncRun.objects.create(**{**fields, "sub_bookmaker_id": 2})  # another pair
    SyncRun.objects.create(**fields, status=SyncRun.Status.FAILED)
    with pytest.raises(IntegrityError), transaction.atomic():
        SyncRun.objects.create(**fields)


def test_factor_scores_from_outside_are_bounded_and_checked():
    hostile: list[Any] = [
        {"key": 1, "name": "Losses", "score": 1.5},
        {"key": True, "name": "x", "score": 1},
        {"key": 2, "name": None, "score": 1},
        {"key": 3, "name": "inf", "score": float("inf")},
        {"key": 4, "name": "huge", "score": 1e9},
        {"key": -1, "name": "negative key", "score": 1},
        "not a factor",
        {"key": 5, "name": "n" * 1000, "score": -2},
    ]
    read = factors.from_json(hostile)
    assert [(c.key, c.score) for c in read] == [(1, 1.5), (5, -2.0)]
    assert len(read[1].name) == factors.MAX_NAME_LENGTH
    assert factors.from_json({"key": 1}) == () and factors.from_json(None) == ()
    many = factors.from_json([{"key": i, "name": "f", "score": 0.0} for i in range(100)])
    assert len(many) == factors.MAX_FACTORS
    assert len(factors.to_json(list(many) * 2)) == factors.MAX_FACTORS


def test_signals_a_stopped_run_did_not_send_are_sent_by_the_next_run(configure, sandbox, signalled):
    run_sync()
    before = vendor_profiles()
    sandbox.state.advance_day()
    calls: list[str] = []

    def stopped_midway(sender: Any, profile: StoredProfile, **kwargs: Any) -> None:
        calls.append(profile.account_id)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a stop of the process does while a receiver runs

    risk_band_changed.connect(stopped_midway)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sync()
    finally:
        risk_band_changed.disconnect(stopped_midway)
    stopped = SyncRun.objects.latest()
    assert stopped.status == SyncRun.Status.FAILED and stopped.signals_sent == 3
    left = RiskProfileChange.objects.filter(signal_pending=True).count()
    assert left > 0 and len(signalled) == 3 and [c["account"] for c in signalled] == calls

    resumed = run_sync()
    assert resumed.signals_sent == left
    assert not RiskProfileChange.objects.filter(signal_pending=True).exists()
    assert set(signalled.accounts().values()) == {1}
    assert set(signalled.accounts()) == moved_accounts(before, vendor_profiles())
    signalled.clear()
    run_sync()
    assert signalled == []
