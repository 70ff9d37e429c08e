"""The daily sync: every changed player's profile into the local store, page by page.

The vendor recommends one batch job a day after the nightly recompute (docs/vendor-api.md §8). A run asks
the batch endpoint for the profiles changed since the last successful run's watermark, minus
``SYNC_OVERLAP``, and upserts each page in one transaction together with the run's checkpoint, so
a run that crashes can be run again: it resumes after the last committed page, and what it
re-reads is upserted to the same rows. Only one run per bookmaker pair works at a time across the
fleet (a lock in the shared cache, refreshed per page). For each player whose band moved,
``risk_band_changed`` is sent once the page's transaction has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from bettorsense.cache import CacheUnavailable
from bettorsense.conf import Config, get_config
from bettorsense.exceptions import SyncAlreadyRunning, SyncRefused
from bettorsense.locks import OwnerLock
from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import RiskProfileChange, SyncRun
from bettorsense.profiles import RiskBand, RiskProfile
from bettorsense.services import bookmaker_ids, iter_risk_profile_pages
from bettorsense.signals import risk_band_changed

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[SyncRun], None]
_UPDATE_FIELDS = [
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
) -> SyncRun:
    """Run one sync and return its finished ``SyncRun``; raises what stopped it, after recording it.

    ``full`` ignores the watermark; ``since`` sets it explicitly. Raises :class:`SyncAlreadyRunning`
    when another run of the same bookmaker pair holds the lock.
    """
    config = get_config()
    bookmaker, sub_bookmaker = bookmaker_ids(config, bookmaker_id, sub_bookmaker_id)
    lock = _SyncLock(config, bookmaker, sub_bookmaker)
    lock.acquire()
    try:
        if since is not None:
            watermark: datetime | None = _as_datetime(since)
        else:
            watermark = None if full else _watermark_from(config, bookmaker, sub_bookmaker)
        mode = SyncRun.Mode.FULL if watermark is None else SyncRun.Mode.INCREMENTAL
        previous = _resumable(bookmaker, sub_bookmaker, mode, watermark)
        run = SyncRun.objects.create(
            mode=mode,
            started_at=timezone.now(),
            bookmaker_id=bookmaker,
            sub_bookmaker_id=sub_bookmaker,
            watermark_from=watermark,
            watermark_reached=previous.watermark_reached if previous else None,
            start_page=previous.checkpoint_page + 1 if previous else 1,
        )
        logger.info("Sync %s started: %s since %s from page %d", run.pk, mode, watermark, run.start_page)
        try:
            _run_pages(run, watermark, lock, progress)
        except BaseException as err:
            run.status = SyncRun.Status.FAILED
            run.error = f"{type(err).__name__}: {err}"[:2000]
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "error", "finished_at"])
            logger.warning("Sync %s failed after page %d: %s", run.pk, run.checkpoint_page, type(err).__name__)
            raise
        run.status = SyncRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
        logger.info(
            "Sync %s succeeded: %d pages, %d profiles, %d created, %d changed",
            run.pk,
            run.pages,
            run.profiles_seen,
            run.profiles_created,
            run.profiles_changed,
        )
        return run
    finally:
        lock.release()


def _as_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    return datetime.combine(value, datetime.min.time(), tzinfo=UTC)


def _run_pages(run: SyncRun, watermark: datetime | None, lock: _SyncLock, progress: ProgressCallback | None) -> None:
    pages = iter_risk_profile_pages(
        changed_since=watermark,
        bookmaker_id=run.bookmaker_id,
        sub_bookmaker_id=run.sub_bookmaker_id,
        start_page=run.start_page,
    )
    for page_number, profiles in pages:
        with transaction.atomic():
            created, changed = _upsert_page(run, profiles)
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
        lock.touch()
        if progress is not None:
            progress(run)


def _upsert_page(run: SyncRun, profiles: list[RiskProfile]) -> tuple[int, int]:
    """Upsert one page; record history; queue the band signals for after the commit."""
    now = timezone.now()
    scope = {"bookmaker_id": run.bookmaker_id, "sub_bookmaker_id": run.sub_bookmaker_id}
    accounts = [profile.account_id for profile in profiles]
    existing: dict[str, tuple[float, int, datetime]] = {
        account: (score, band, changed_at)
        for account, score, band, changed_at in StoredProfile.objects.filter(
            **scope, account_id__in=accounts
        ).values_list("account_id", "risk_score", "band", "changed_at")
    }
    rows: list[StoredProfile] = []
    history: list[dict[str, Any]] = []
    moves: list[tuple[str, int, int]] = []
    created = changed = 0
    for profile in profiles:
        old = existing.get(profile.account_id)
        is_change = old is None or old[0] != profile.risk_score or old[1] != profile.band
        rows.append(
            StoredProfile(
                **scope,
                account_id=profile.account_id,
                risk_score=profile.risk_score,
                risk_category=profile.risk_category,
                band=profile.band,
                percentile=profile.percentile,
                category_scores=[{"key": c.key, "name": c.name, "score": c.score} for c in profile.category_scores],
                last_updated=profile.last_updated,
                fetched_at=now,
                changed_at=now if is_change else old[2],  # type: ignore[index]
            )
        )
        if old is None:
            created += 1
        elif is_change:
            changed += 1
        if is_change:
            history.append(
                {
                    "account": profile.account_id,
                    "risk_score": profile.risk_score,
                    "band": int(profile.band),
                    "previous_score": old[0] if old else None,
                    "previous_band": old[1] if old else None,
                    "last_updated": profile.last_updated,
                }
            )
        if old is not None and old[1] != profile.band:
            moves.append((profile.account_id, old[1], int(profile.band)))
    StoredProfile.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["bookmaker_id", "sub_bookmaker_id", "account_id"],
        update_fields=_UPDATE_FIELDS,
    )
    if history:
        ids = dict(
            StoredProfile.objects.filter(**scope, account_id__in=[h["account"] for h in history]).values_list(
                "account_id", "id"
            )
        )
        RiskProfileChange.objects.bulk_create(
            [
                RiskProfileChange(
                    profile_id=ids[h["account"]],
                    risk_score=h["risk_score"],
                    band=h["band"],
                    previous_score=h["previous_score"],
                    previous_band=h["previous_band"],
                    last_updated=h["last_updated"],
                    recorded_at=now,
                )
                for h in history
            ]
        )
    if moves:
        transaction.on_commit(lambda: _send_band_changes(scope, moves))
    return created, changed


def _send_band_changes(scope: dict[str, int], moves: list[tuple[str, int, int]]) -> None:
    """After the commit: a failing receiver is logged and does not stop the others or the sync."""
    stored = {p.account_id: p for p in StoredProfile.objects.filter(**scope, account_id__in=[m[0] for m in moves])}
    for account, previous, new in moves:
        responses = risk_band_changed.send_robust(
            sender=StoredProfile, profile=stored[account], previous_band=RiskBand(previous), new_band=RiskBand(new)
        )
        for receiver, response in responses:
            if isinstance(response, Exception):
                logger.error(
                    "risk_band_changed receiver %r failed for %s",
                    receiver,
                    account,
                    exc_info=(type(response), response, response.__traceback__),
                )
