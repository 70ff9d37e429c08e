"""The daily sync: every changed player's profile into the local store, page by page.

The vendor recommends one batch job a day after the nightly recompute (docs/vendor-api.md §8). A run asks
the batch endpoint for the profiles changed since the last successful run's watermark, minus
``SYNC_OVERLAP``, and upserts each page in one transaction together with the run's checkpoint, so
a run that crashes can be run again: it resumes after the last committed page, and what it
re-reads is upserted to the same rows.

One run per bookmaker pair works at a time. The cache lock is the first, cheap gate; the database
is the rule: a partial unique constraint allows one ``running`` SyncRun per pair, and every page's
transaction first re-claims the run's row (``status = running``, heartbeat now), so a run whose
row was taken from it commits nothing more. A running row whose heartbeat is older than
``SYNC_LOCK_TTL`` (a crashed process) is marked failed by the next run, which then resumes from its
checkpoint.

While a page is written, the next ``SYNC_PREFETCH_PAGES`` pages are downloaded and parsed in a
background thread (:class:`bettorsense.prefetch.Prefetcher`), bounded, so network and database time
overlap; pages are still written one at a time, in order. On PostgreSQL a page is written with one
statement (:mod:`bettorsense.sync_postgres`), elsewhere with the ORM; :func:`_upsert_page` decides
what to write for both.

``risk_band_changed`` is sent after the page's transaction commits, once per change row this run
inserted whose band moved or which is the player's first (previous band None). A change row is
unique per (profile, vendor update time), so a row another run recorded is neither inserted nor
signalled again. A row due for a signal is inserted ``signal_pending``, and the flag is cleared
(one conditional UPDATE) just before its signal is sent. Rows that a run committed but did not live
to send stay pending, and the pair's next run sends them first. The pair's initial load (the runs
before its first success) signals no one unless ``SIGNAL_INITIAL_LOAD`` is on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Q
from django.utils import timezone

from bettorsense import factors, metrics, sync_postgres
from bettorsense.cache import CacheUnavailable
from bettorsense.conf import DEFAULT_CLIENT, Config, get_config
from bettorsense.exceptions import SyncAlreadyRunning, SyncRefused
from bettorsense.locks import OwnerLock
from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import RiskProfileChange, SyncRun
from bettorsense.prefetch import Prefetcher, close_source
from bettorsense.privacy.pseudonyms import log_name
from bettorsense.profiles import RiskBand, RiskProfile
from bettorsense.services import bookmaker_ids, iter_risk_profile_pages
from bettorsense.signals import risk_band_changed
from bettorsense.sync_postgres import HistoryRow, PageRow

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[SyncRun], None]
Page = tuple[int, list[RiskProfile]]
_SEND_CHUNK = 500
_UPDATE_FIELDS = [
    "client",
    "risk_score",
    "risk_category",
    "band",
    "percentile",
    "category_scores",
    "last_updated",
    "fetched_at",
    "changed_at",
]


class _SyncLock:
    """One run per bookmaker pair across the fleet: an :class:`OwnerLock`, refreshed after every page."""

    def __init__(self, config: Config, bookmaker: int, sub_bookmaker: int) -> None:
        self.lock = OwnerLock(config, f"sync:{bookmaker}:{sub_bookmaker}:lock", ttl=config.sync_lock_ttl)
        self.owner: str | None = None

    def acquire(self) -> None:
        try:
            self.owner = self.lock.acquire()
        except CacheUnavailable as err:
            raise SyncRefused(f"Cannot take the sync lock: the cache is unavailable ({err}).") from None
        if self.owner is None:
            raise SyncAlreadyRunning("Another sync of these bookmaker ids is running.")

    def touch(self) -> None:
        if self.owner is None:
            return
        try:
            if not self.lock.refresh(self.owner):
                logger.warning("The sync lock expired; another run may have taken it")
        except CacheUnavailable as err:
            logger.warning("Could not extend the sync lock: %s", err)

    def release(self) -> None:
        if self.owner is not None:
            self.lock.release(self.owner)


def _watermark_from(config: Config, bookmaker: int, sub_bookmaker: int) -> datetime | None:
    last = (
        SyncRun.objects.filter(bookmaker_id=bookmaker, sub_bookmaker_id=sub_bookmaker, status=SyncRun.Status.SUCCEEDED)
        .exclude(watermark_reached=None)
        .order_by("-started_at", "-id")
        .first()
    )
    if last is None or last.watermark_reached is None:
        return None
    return last.watermark_reached - timedelta(seconds=config.sync_overlap)


def _resumable(bookmaker: int, sub_bookmaker: int, mode: str, watermark: datetime | None) -> SyncRun | None:
    """The last run, if it failed after committing pages of the same request."""
    last = (
        SyncRun.objects.filter(bookmaker_id=bookmaker, sub_bookmaker_id=sub_bookmaker)
        .order_by("-started_at", "-id")
        .first()
    )
    if (
        last is not None
        and last.status == SyncRun.Status.FAILED
        and last.mode == mode
        and last.watermark_from == watermark
        and last.checkpoint_page > 0
    ):
        return last
    return None


def run_sync(
    *,
    full: bool = False,
    since: date | datetime | None = None,
    bookmaker_id: int | None = None,
    sub_bookmaker_id: int | None = None,
    progress: ProgressCallback | None = None,
    client: str = DEFAULT_CLIENT,
) -> SyncRun:
    """Run one sync and return its finished ``SyncRun``; raises what stopped it, after recording it.

    ``full`` ignores the watermark; ``since`` sets it explicitly. Raises :class:`SyncAlreadyRunning`
    when another run of the same bookmaker pair holds the lock or the running row, or takes the row
    over from this one. ``client`` names the credential set whose credentials and bookmaker ids the
    run uses; its rows record the set.
    """
    config = get_config(client)
    bookmaker, sub_bookmaker = bookmaker_ids(config, bookmaker_id, sub_bookmaker_id)
    lock = _SyncLock(config, bookmaker, sub_bookmaker)
    lock.acquire()
    try:
        _reclaim_abandoned(config, bookmaker, sub_bookmaker)
        if since is not None:
            watermark: datetime | None = _as_datetime(since)
        else:
            watermark = None if full else _watermark_from(config, bookmaker, sub_bookmaker)
        mode = SyncRun.Mode.FULL if watermark is None else SyncRun.Mode.INCREMENTAL
        previous = _resumable(bookmaker, sub_bookmaker, mode, watermark)
        run = _claim_run(
            client=config.client,
            mode=mode,
            bookmaker_id=bookmaker,
            sub_bookmaker_id=sub_bookmaker,
            watermark_from=watermark,
            watermark_reached=previous.watermark_reached if previous else None,
            start_page=previous.checkpoint_page + 1 if previous else 1,
            initial_load=not _has_succeeded(bookmaker, sub_bookmaker),
        )
        logger.info(
            "Sync %s of credential set %s started: %s since %s from page %d",
            run.pk,
            config.client,
            mode,
            watermark,
            run.start_page,
        )
        try:
            _send_left_over(run)
            _run_pages(config, run, watermark, lock, progress)
        except BaseException as err:
            _finish(run, SyncRun.Status.FAILED, f"{type(err).__name__}: {err}"[:2000])
            logger.warning("Sync %s failed after page %d: %s", run.pk, run.checkpoint_page, type(err).__name__)
            raise
        _finish(run, SyncRun.Status.SUCCEEDED, "")
        logger.info(
            "Sync %s succeeded: %d pages, %d profiles, %d created, %d changed, %d signalled",
            run.pk,
            run.pages,
            run.profiles_seen,
            run.profiles_created,
            run.profiles_changed,
            run.signals_sent,
        )
        return run
    finally:
        lock.release()


def _has_succeeded(bookmaker: int, sub_bookmaker: int) -> bool:
    return SyncRun.objects.filter(
        bookmaker_id=bookmaker, sub_bookmaker_id=sub_bookmaker, status=SyncRun.Status.SUCCEEDED
    ).exists()


def _reclaim_abandoned(config: Config, bookmaker: int, sub_bookmaker: int) -> int:
    """Mark failed the pair's running row silent for longer than SYNC_LOCK_TTL; one UPDATE, so one reclaimer."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=config.sync_lock_ttl)
    reclaimed = SyncRun.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None, started_at__lt=cutoff),
        bookmaker_id=bookmaker,
        sub_bookmaker_id=sub_bookmaker,
        status=SyncRun.Status.RUNNING,
    ).update(
        status=SyncRun.Status.FAILED,
        finished_at=now,
        error=f"Abandoned: no page committed for over {config.sync_lock_ttl:g} s (SYNC_LOCK_TTL).",
    )
    if reclaimed:
        logger.warning("Sync of bookmaker %s/%s: reclaimed an abandoned running run", bookmaker, sub_bookmaker)
    return reclaimed


def _claim_run(**fields: Any) -> SyncRun:
    """Insert the pair's one running row; the partial unique constraint refuses a second."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return SyncRun.objects.create(status=SyncRun.Status.RUNNING, started_at=now, heartbeat_at=now, **fields)
    except IntegrityError:
        raise SyncAlreadyRunning(
            "Another sync of these bookmaker ids is running (its row is in the database)."
        ) from None


def _keep_claim(run: SyncRun) -> None:
    """Inside a page's transaction: renew the heartbeat, or stop if the row was taken over.

    On PostgreSQL the UPDATE also locks the row until the page commits, so a reclaimer waits for the
    page and then sees a fresh heartbeat; SQLite has one writer at a time anyway.
    """
    now = timezone.now()
    if not SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(heartbeat_at=now):
        raise SyncAlreadyRunning("This sync was taken over as abandoned; the run that reclaimed it does the work.")
    run.heartbeat_at = now


def _finish(run: SyncRun, status: str, error: str) -> None:
    """Record the outcome, unless the row was taken over (its reclaimer recorded why)."""
    run.status, run.error, run.finished_at = status, error, timezone.now()
    SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(
        status=status, error=error, finished_at=run.finished_at
    )


def _as_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    return datetime.combine(value, datetime.min.time(), tzinfo=UTC)


def _run_pages(
    config: Config, run: SyncRun, watermark: datetime | None, lock: _SyncLock, progress: ProgressCallback | None
) -> None:
    pages = iter_risk_profile_pages(
        changed_since=watermark,
        bookmaker_id=run.bookmaker_id,
        sub_bookmaker_id=run.sub_bookmaker_id,
        start_page=run.start_page,
        client=config.client,
    )
    signal_first_seen = config.signal_initial_load or not run.initial_load
    with _fetched_ahead(config, run, pages) as feed:
        for page_number, profiles in feed:
            _write_page(config, run, page_number, profiles, signal_first_seen)
            lock.touch()
            if progress is not None:
                progress(run)


@contextmanager
def _fetched_ahead(config: Config, run: SyncRun, pages: Iterator[Page]) -> Iterator[Iterator[Page]]:
    """The pages, downloaded and parsed up to ``SYNC_PREFETCH_PAGES`` ahead in a thread (0: in this one).

    Leaving the block (the last page written, a write failed, the run was taken over or interrupted)
    stops the fetch thread before the run records its outcome.

    Called inside a transaction (``ATOMIC_REQUESTS``, a caller's ``atomic()``, a ``TestCase``), the
    sync fetches in this thread: the fetch thread's own connection would not see that transaction,
    and its database cache writes (the token's renewal lock) would wait on the locks it holds.
    """
    if config.sync_prefetch_pages < 1 or connection.in_atomic_block:
        try:
            yield pages
        finally:
            close_source(pages)
        return
    # One request with its retries is bounded by the timeouts and RETRY_BUDGET: wait that long at most.
    join_timeout = config.retry_budget + config.connect_timeout + config.read_timeout
    with Prefetcher(
        pages, config.sync_prefetch_pages, name=f"bettorsense-sync-{run.pk}-fetch", join_timeout=join_timeout
    ) as feed:
        yield feed


def _write_page(
    config: Config, run: SyncRun, page_number: int, profiles: list[RiskProfile], signal_first_seen: bool
) -> None:
    """One page and the run's checkpoint in one transaction, then the page's signals after the commit."""
    with transaction.atomic():
        _keep_claim(run)
        created, changed, to_signal = _upsert_page(config, run, profiles, signal_first_seen)
        reached = max((p.last_updated for p in profiles if p.last_updated), default=None)
        if reached is not None and (run.watermark_reached is None or reached > run.watermark_reached):
            run.watermark_reached = reached
        run.pages += 1
        run.profiles_seen += len(profiles)
        run.profiles_created += created
        run.profiles_changed += changed
        run.checkpoint_page = page_number
        run.save(
            update_fields=[
                "pages",
                "profiles_seen",
                "profiles_created",
                "profiles_changed",
                "checkpoint_page",
                "watermark_reached",
            ]
        )
    metrics.profiles_synced(config, len(profiles))
    if to_signal:
        _send_band_changes(run, to_signal)


def _upsert_page(
    config: Config, run: SyncRun, profiles: list[RiskProfile], signal_first_seen: bool
) -> tuple[int, int, list[int]]:
    """Upsert one page and record its changes; returns the counts and the change rows to signal.

    What to write is decided here, once, for both write paths: which players are new or changed,
    each row's ``changed_at``, and which change rows are due a signal. Only the statements differ.
    """
    now = timezone.now()
    accounts = [profile.account_id for profile in profiles]
    fast = config.sync_postgres_fast_path and sync_postgres.applies(connection)
    existing = (sync_postgres.stored_state if fast else _stored_state_portable)(connection, run, accounts)
    rows: list[PageRow] = []
    history: list[HistoryRow] = []
    created = changed = 0
    for profile in profiles:
        old = existing.get(profile.account_id)
        is_change = old is None or old[0] != profile.risk_score or old[1] != profile.band
        scores = factors.to_json(profile.category_scores)
        rows.append(PageRow(profile, scores, now if is_change else old[2]))  # type: ignore[index]
        if old is None:
            created += 1
        elif is_change:
            changed += 1
        if is_change:
            previous_band = old[1] if old else None
            history.append(
                HistoryRow(
                    profile.account_id,
                    old[0] if old else None,
                    previous_band,
                    _is_signalled(previous_band, profile.band, signal_first_seen),
                )
            )
    if fast:
        to_signal = sync_postgres.write_page(connection, run, now, rows, history)
    else:
        to_signal = _write_page_portable(run, now, rows, history)
    return created, changed, to_signal


def _stored_state_portable(
    connection: BaseDatabaseWrapper, run: SyncRun, accounts: list[str]
) -> dict[str, tuple[float, int, datetime]]:
    """``{account: (risk_score, band, changed_at)}`` of the page's players already in the store."""
    return {
        account: (score, band, changed_at)
        for account, score, band, changed_at in StoredProfile.objects.filter(
            bookmaker_id=run.bookmaker_id, sub_bookmaker_id=run.sub_bookmaker_id, account_id__in=accounts
        ).values_list("account_id", "risk_score", "band", "changed_at")
    }


def _write_page_portable(run: SyncRun, now: datetime, rows: list[PageRow], history: list[HistoryRow]) -> list[int]:
    """Any database: the ORM's bulk upsert, the profiles' ids, the change rows; returns those to signal."""
    scope = {"bookmaker_id": run.bookmaker_id, "sub_bookmaker_id": run.sub_bookmaker_id}
    StoredProfile.objects.bulk_create(
        [
            StoredProfile(
                **scope,
                client=run.client,
                account_id=row.profile.account_id,
                risk_score=row.profile.risk_score,
                risk_category=row.profile.risk_category,
                band=row.profile.band,
                percentile=row.profile.percentile,
                category_scores=row.scores,
                last_updated=row.profile.last_updated,
                fetched_at=now,
                changed_at=row.changed_at,
            )
            for row in rows
        ],
        update_conflicts=True,
        unique_fields=["bookmaker_id", "sub_bookmaker_id", "account_id"],
        update_fields=_UPDATE_FIELDS,
    )
    if not history:
        return []
    ids = dict(
        StoredProfile.objects.filter(**scope, account_id__in=[h.account_id for h in history]).values_list(
            "account_id", "id"
        )
    )
    by_account = {row.profile.account_id: row for row in rows}
    RiskProfileChange.objects.bulk_create(
        [_change_row(run, now, ids[change.account_id], by_account[change.account_id], change) for change in history],
        ignore_conflicts=True,  # a version another run recorded: not ours to record or signal
    )
    # The rows this page inserted: this run's, at this page's time (a conflicting row kept its own run).
    inserted = RiskProfileChange.objects.filter(
        sync_run=run, recorded_at=now, profile_id__in=ids.values(), signal_pending=True
    )
    return list(inserted.order_by("pk").values_list("pk", flat=True))


def _change_row(
    run: SyncRun, now: datetime, profile_id: int, page_row: PageRow, change: HistoryRow
) -> RiskProfileChange:
    """The history row of one change: what the vendor said on this page, and what the store held before."""
    return RiskProfileChange(
        profile_id=profile_id,
        risk_score=page_row.profile.risk_score,
        band=int(page_row.profile.band),
        risk_category=page_row.profile.risk_category,
        percentile=page_row.profile.percentile,
        category_scores=page_row.scores,
        previous_score=change.previous_score,
        previous_band=change.previous_band,
        last_updated=page_row.profile.last_updated,
        recorded_at=now,
        sync_run=run,
        signal_pending=change.signal_pending,
    )


def _is_signalled(previous_band: int | None, band: int, signal_first_seen: bool) -> bool:
    return signal_first_seen if previous_band is None else previous_band != band


def _send_left_over(run: SyncRun) -> None:
    """Send what a run of this pair committed but did not live to send (it died between the two)."""
    left = RiskProfileChange.objects.filter(
        signal_pending=True, profile__bookmaker_id=run.bookmaker_id, profile__sub_bookmaker_id=run.sub_bookmaker_id
    ).order_by("pk")
    ids = list(left.values_list("pk", flat=True))
    if ids:
        logger.warning("Sync %s: sending %d band signals an earlier run committed but did not send", run.pk, len(ids))
        _send_band_changes(run, ids)


def _send_band_changes(run: SyncRun, change_ids: list[int]) -> None:
    """After the commit: each change is claimed (pending -> sent) and then sent, so it is sent once.

    A failing receiver is logged and does not stop the others or the sync. A process stopped while a
    receiver runs has sent that one change; the changes after it stay pending for the next run.
    """
    config = get_config(run.client)
    sent = 0
    try:
        for start in range(0, len(change_ids), _SEND_CHUNK):
            chunk = change_ids[start : start + _SEND_CHUNK]
            for change in RiskProfileChange.objects.filter(pk__in=chunk).select_related("profile").order_by("pk"):
                if not RiskProfileChange.objects.filter(pk=change.pk, signal_pending=True).update(signal_pending=False):
                    continue  # another process sent it
                sent += 1
                if change.previous_band is not None:  # a move between bands, not a first sight
                    metrics.band_changed(config, RiskBand(change.band).name.lower())
                _send_one(change)
    finally:
        if sent:
            SyncRun.objects.filter(pk=run.pk).update(signals_sent=F("signals_sent") + sent)
            run.signals_sent += sent


def _send_one(change: RiskProfileChange) -> None:
    previous = None if change.previous_band is None else RiskBand(change.previous_band)
    responses = risk_band_changed.send_robust(
        sender=StoredProfile,
        profile=change.profile,
        previous_band=previous,
        new_band=RiskBand(change.band),
        change=change,
    )
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.error(
                "risk_band_changed receiver %r failed for %s",
                receiver,
                log_name(change.profile.account_id),
                exc_info=(type(response), response, response.__traceback__),
            )
