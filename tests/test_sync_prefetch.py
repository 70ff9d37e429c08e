"""The sync at the network's pace: pages fetched ahead in a thread, and PostgreSQL's one-statement write.

Over the real sandbox and the real database (SQLite or PostgreSQL). The look-ahead is forced, not
timed: the writer is held in its progress callback (after a page committed) while the fetch thread
fills its buffer, and the thread's own debug record says when it waits for the writer; the pages it
asked for are the ones the sandbox recorded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from bettorsense.conf import get_config
from bettorsense.exceptions import BadResponse, BettorSenseConfigurationError, ServiceUnavailable, SyncAlreadyRunning
from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import RiskProfileChange, SyncRun
from bettorsense.sandbox import Fault, SandboxServer, SandboxState
from bettorsense.services import iter_risk_profiles
from bettorsense.signals import risk_band_changed
from bettorsense.sync import run_sync
from tests.support.postgres import require_postgresql
from tests.support.sandbox import sandbox_settings

pytestmark = pytest.mark.django_db(transaction=True)

FETCH_THREAD = "bettorsense-sync-"


def fetch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(FETCH_THREAD)]


def batch_pages(sandbox: SandboxServer) -> list[int]:
    return [int(r.query["page"]) for r in list(sandbox.state.requests) if r.route == "batch"]


class PrefetchWaits(logging.Handler):
    """The fetch thread's "waiting for the consumer" records, with the page numbers it held then."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.held: list[list[int]] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        pages = [page for page, _ in getattr(record, "prefetched", [])]
        with self.changed:
            self.held.append(pages)
            self.changed.notify_all()

    def wait_for(self, pages: list[int], timeout: float = 30) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: pages in self.held, timeout)


@pytest.fixture
def prefetch_waits() -> Iterator[PrefetchWaits]:
    handler = PrefetchWaits()
    logger = logging.getLogger("bettorsense.prefetch")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


class HeldSync:
    """``run_sync`` in a thread of its own, held in its progress callback after page ``hold_after``."""

    def __init__(self, hold_after: int, at_hold: Callable[[SyncRun], None] | None = None) -> None:
        self.hold_after = hold_after
        self.at_hold = at_hold
        self.held, self.release = threading.Event(), threading.Event()
        self.outcome: list[object] = []
        self.thread = threading.Thread(target=self._run)

    def _progress(self, run: SyncRun) -> None:
        if run.checkpoint_page == self.hold_after:
            if self.at_hold is not None:
                self.at_hold(run)
            self.held.set()
            assert self.release.wait(30), "the test never released the writer"

    def _run(self) -> None:
        try:
            self.outcome.append(run_sync(progress=self._progress))
        except BaseException as err:  # for the test's assertions
            self.outcome.append(err)
        finally:
            connections.close_all()

    def __enter__(self) -> HeldSync:
        self.thread.start()
        assert self.held.wait(30), f"the sync never committed page {self.hold_after}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


def test_pages_are_written_in_order_and_the_thread_ends(configure, sandbox):
    configure(SYNC_PREFETCH_PAGES=2)
    committed: list[int] = []
    run = run_sync(progress=lambda run: committed.append(run.checkpoint_page))
    assert run.status == SyncRun.Status.SUCCEEDED
    assert committed == [1, 2, 3, 4, 5] and batch_pages(sandbox) == [1, 2, 3, 4, 5]
    expected = {p.account_id: p.risk_score for p in iter_risk_profiles()}
    assert dict(StoredProfile.objects.values_list("account_id", "risk_score")) == expected
    assert fetch_threads() == []


@pytest.mark.parametrize("ahead", [1, 2, 3])
def test_the_fetcher_stops_ahead_pages_ahead_of_a_blocked_writer(configure, sandbox, prefetch_waits, ahead):
    configure(SYNC_PREFETCH_PAGES=ahead)
    with HeldSync(hold_after=1) as held:
        # The writer holds page 1 (committed, in its callback); the thread fetched the next `ahead`
        # pages and waits for room: it has asked for no page beyond them.
        following = list(range(2, 2 + ahead))
        assert prefetch_waits.wait_for(following)
        assert batch_pages(sandbox) == [1, *following]
        assert len(fetch_threads()) == 1
    assert [type(o).__name__ for o in held.outcome] == ["SyncRun"]
    assert batch_pages(sandbox) == [1, 2, 3, 4, 5]
    assert fetch_threads() == []


def test_without_prefetch_a_page_is_asked_for_after_the_previous_one_committed(configure, sandbox):
    configure(SYNC_PREFETCH_PAGES=0)
    asked: list[tuple[list[int], int]] = []

    def record(run: SyncRun) -> None:
        asked.append((batch_pages(sandbox), len(fetch_threads())))

    run_sync(progress=record)
    # After page n committed, pages 1..n were asked for, and no thread was started.
    assert asked == [(list(range(1, n + 1)), 0) for n in range(1, 6)]


def test_inside_a_transaction_the_sync_fetches_in_its_own_thread(configure, sandbox):
    # A fetch thread's connection would not see the caller's transaction, and its cache writes
    # would wait on that transaction's locks.
    configure(SYNC_PREFETCH_PAGES=2)
    threads: list[int] = []
    with transaction.atomic():
        run = run_sync(progress=lambda run: threads.append(len(fetch_threads())))
    assert run.status == SyncRun.Status.SUCCEEDED and threads == [0, 0, 0, 0, 0]


def test_a_fetch_error_surfaces_typed_after_the_pages_before_it_committed(configure, sandbox):
    configure(MAX_RETRIES=0, SYNC_PREFETCH_PAGES=3)
    sandbox.state.add_fault(Fault(target="batch", kind="status", status=503, page=4, times=1))
    with pytest.raises(ServiceUnavailable):
        run_sync()
    failed = SyncRun.objects.get()
    assert failed.status == SyncRun.Status.FAILED and failed.checkpoint_page == 3
    assert "ServiceUnavailable" in failed.error and StoredProfile.objects.count() == 3000
    assert fetch_threads() == []
    resumed = run_sync()
    assert resumed.start_page == 4 and resumed.status == SyncRun.Status.SUCCEEDED


def test_a_page_that_cannot_be_believed_surfaces_as_bad_response(configure, sandbox):
    configure(SYNC_PREFETCH_PAGES=2)
    sandbox.state.add_fault(Fault(target="batch", kind="missing_field", field="riskScore", page=2))
    with pytest.raises(BadResponse):
        run_sync()
    assert SyncRun.objects.get().checkpoint_page == 1
    assert fetch_threads() == []


def test_a_writer_that_fails_stops_the_fetcher(configure, sandbox, prefetch_waits):
    configure(SYNC_PREFETCH_PAGES=2)

    def taken_over(run: SyncRun) -> None:
        # What a reclaimer does to a run it believes abandoned: the writer's next page fails.
        SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.FAILED, error="Abandoned (by the test).")

    with HeldSync(hold_after=1, at_hold=taken_over) as held:
        assert prefetch_waits.wait_for([2, 3])
    assert [type(o) for o in held.outcome] == [SyncAlreadyRunning]
    # The thread had fetched pages 2 and 3; the writer took page 2 and failed on it, so the thread
    # fetched at most one more page before it was stopped, and it has ended.
    assert batch_pages(sandbox) in ([1, 2, 3], [1, 2, 3, 4])
    assert fetch_threads() == []
    assert StoredProfile.objects.count() == 1000


def test_an_interrupted_writer_stops_the_fetcher(configure, sandbox, prefetch_waits):
    configure(SYNC_PREFETCH_PAGES=2)

    def interrupt(run: SyncRun) -> None:
        assert prefetch_waits.wait_for([2, 3])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sync(progress=lambda run: interrupt(run) if run.checkpoint_page == 1 else None)
    assert batch_pages(sandbox) == [1, 2, 3]
    assert fetch_threads() == []
    assert SyncRun.objects.get().status == SyncRun.Status.FAILED


def test_prefetch_pages_is_validated(configure):
    configure(SYNC_PREFETCH_PAGES=-1)
    with pytest.raises(BettorSenseConfigurationError, match="SYNC_PREFETCH_PAGES"):
        get_config()
    configure(SYNC_PREFETCH_PAGES="4")
    assert get_config().sync_prefetch_pages == 4


# --- PostgreSQL's write path against the portable one ---------------------------------------


@pytest.fixture
def postgres() -> None:
    require_postgresql()


def _run_ordinal(runs: list[SyncRun], moment: datetime) -> int:
    """Which run (1, 2, ...) a timestamp falls in: the two paths' clocks differ, their runs do not."""
    return sum(1 for run in runs if run.started_at <= moment)


def _store_snapshot(signals: list[tuple[Any, ...]]) -> dict[str, Any]:
    runs = list(SyncRun.objects.order_by("started_at", "pk"))
    run_ordinal = {run.pk: index for index, run in enumerate(runs, 1)}
    profiles = sorted(
        (
            p.client,
            p.account_id,
            p.risk_score,
            p.risk_category,
            p.band,
            p.percentile,
            p.category_scores,
            p.last_updated,
            _run_ordinal(runs, p.fetched_at),
            _run_ordinal(runs, p.changed_at),
        )
        for p in StoredProfile.objects.all()
    )
    changes = sorted(
        (
            c.profile.account_id,
            c.risk_score,
            c.band,
            c.risk_category,
            c.percentile,
            c.category_scores,
            c.previous_score,
            c.previous_band,
            c.last_updated,
            _run_ordinal(runs, c.recorded_at),
            run_ordinal.get(c.sync_run_id),
            c.signal_pending,
        )
        for c in RiskProfileChange.objects.select_related("profile")
    )
    summary = [
        (
            r.mode,
            r.status,
            r.pages,
            r.profiles_seen,
            r.profiles_created,
            r.profiles_changed,
            r.signals_sent,
            r.checkpoint_page,
            r.initial_load,
            r.watermark_reached,
        )
        for r in runs
    ]
    return {"profiles": profiles, "changes": changes, "runs": summary, "signals": signals}


def _one_scenario(server: SandboxServer, settings: Any, fast_path: bool) -> tuple[dict[str, Any], int]:
    """Initial load, new players and re-scores, a re-read over versions already recorded; a fresh
    sandbox state each time, so both paths see the same vendor."""
    server.state = SandboxState()
    server.state.set_config(players=3000, page_size=1000)
    settings.BETTORSENSE = sandbox_settings(server, SYNC_POSTGRES_FAST_PATH=fast_path, MAX_RETRIES=0)
    signals: list[tuple[Any, ...]] = []

    def receiver(sender: Any, profile: StoredProfile, previous_band: Any, new_band: Any, **kwargs: Any) -> None:
        change = kwargs["change"]
        signals.append((profile.account_id, previous_band, new_band, change.risk_score, change.last_updated))

    risk_band_changed.connect(receiver)
    try:
        with CaptureQueriesContext(connection) as queries:
            run_sync()  # the initial load: no signals
            server.state.add_players(25)  # first seen after it: signalled, previous band None
            server.state.advance_day()  # re-scores: band moves are signalled
            run_sync()
            # Scores edited here: the next full read sees changes whose versions are recorded
            # already; the profiles are written back, the versions neither recorded nor signalled.
            StoredProfile.objects.filter(account_id__in=[f"player_{i}" for i in range(1, 300)]).update(risk_score=-1)
            run_sync(full=True)
            server.state.advance_day()
            run_sync(full=True)
    finally:
        risk_band_changed.disconnect(receiver)
    change_insert = 'INSERT INTO "bettorsense_riskprofilechange"'
    orm_change_inserts = sum(1 for query in queries.captured_queries if query["sql"].startswith(change_insert))
    snapshot = _store_snapshot(signals)
    RiskProfileChange.objects.all().delete()
    StoredProfile.objects.all().delete()
    SyncRun.objects.all().delete()
    return snapshot, orm_change_inserts


def test_the_postgresql_path_writes_what_the_portable_path_writes(postgres, server, settings):
    portable, portable_orm_inserts = _one_scenario(server, settings, fast_path=False)
    fast, fast_orm_inserts = _one_scenario(server, settings, fast_path=True)
    assert portable_orm_inserts > 0 and fast_orm_inserts == 0  # each path ran
    assert portable["runs"] == fast["runs"]
    assert portable["signals"] == fast["signals"]
    assert portable["changes"] == fast["changes"]
    assert portable["profiles"] == fast["profiles"]
    # The scenario covered what it is for.
    runs = portable["runs"]
    assert [r[1] for r in runs] == ["succeeded"] * 4 and runs[2][5] > 0  # edited scores seen as changes
    assert any(s[1] is None for s in portable["signals"]) and any(s[1] is not None for s in portable["signals"])
    assert len(portable["changes"]) > 3000 and all(c[-1] is False for c in portable["changes"])
