"""Which players wait for a review: the queue, its counts and its filters.

A change *enters* the review level when its band is at the level or above and higher than the band
before it: a player first seen at High, a rise from Medium to High, and a rise from High to Very
high all enter it (the last is a stronger signal than the one reviewed). A player is queued by the
latest change of theirs that entered, until a review answers that change or a later one; a later
entering change queues them again. A player who falls back below the level before anyone looked
stays queued: the signal was given, and the record must say what was done about it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from bettorsense.conf import get_config
from bettorsense.models import RiskProfileChange
from bettorsense.profiles import RiskBand
from bettorsense.reviews.models import Review


@dataclass(frozen=True)
class AgeBucket:
    key: str
    label: str
    from_days: int
    to_days: int | None  # None: no upper end

    def condition(self, now: datetime) -> Q:
        """Entries that have waited at least ``from_days`` and less than ``to_days``."""
        waited = Q(recorded_at__lte=now - timedelta(days=self.from_days))
        if self.to_days is not None:
            waited &= Q(recorded_at__gt=now - timedelta(days=self.to_days))
        return waited


AGE_BUCKETS: tuple[AgeBucket, ...] = (
    AgeBucket("0-1", "under a day", 0, 1),
    AgeBucket("1-3", "1 to 3 days", 1, 3),
    AgeBucket("3-7", "3 to 7 days", 3, 7),
    AgeBucket("7-", "7 days or more", 7, None),
)


@dataclass(frozen=True)
class QueueFilters:
    """The page's filters, each validated (an unknown value is no filter)."""

    band: RiskBand | None = None
    age: AgeBucket | None = None
    bookmaker_id: int | None = None

    @classmethod
    def from_query(cls, query: dict[str, str]) -> QueueFilters:
        band = _small_int(query.get("band", ""))
        age = query.get("age", "")
        return cls(
            band=RiskBand(band) if band in RiskBand.values else None,
            age=next((bucket for bucket in AGE_BUCKETS if bucket.key == age), None),
            bookmaker_id=_small_int(query.get("bookmaker", "")),
        )


def _small_int(text: str) -> int | None:
    """A non-negative id of at most 9 digits (within a PositiveIntegerField), or None."""
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else None


@dataclass(frozen=True)
class QueueCounts:
    total: int
    by_band: tuple[tuple[RiskBand, int], ...]
    by_age: tuple[tuple[AgeBucket, int], ...]


def review_level() -> RiskBand:
    """The lowest band whose entry queues a player (the ``REVIEW_BAND`` setting)."""
    return RiskBand[get_config().review_band.upper()]


def entering_changes(level: RiskBand) -> QuerySet[RiskProfileChange]:
    """The recorded changes that brought a player into ``level`` or higher."""
    return RiskProfileChange.objects.filter(
        Q(band__gte=level) & (Q(previous_band__isnull=True) | Q(band__gt=F("previous_band")))
    )


def queued(level: RiskBand) -> QuerySet[RiskProfileChange]:
    """One entry per waiting player: the change that queued them, oldest first."""
    entering = entering_changes(level)
    later_entry = entering.filter(profile=OuterRef("profile"), id__gt=OuterRef("id"))
    answered = Review.objects.filter(profile=OuterRef("profile"), change_id__gte=OuterRef("id"))
    return (
        entering.filter(~Exists(later_entry), ~Exists(answered)).select_related("profile").order_by("recorded_at", "id")
    )


def is_queued(change: RiskProfileChange, level: RiskBand) -> bool:
    return queued(level).filter(id=change.id).exists()


def filtered(entries: QuerySet[RiskProfileChange], filters: QueueFilters, now: datetime) -> QuerySet[RiskProfileChange]:
    if filters.band is not None:
        entries = entries.filter(profile__band=filters.band)
    if filters.age is not None:
        entries = entries.filter(filters.age.condition(now))
    if filters.bookmaker_id is not None:
        entries = entries.filter(profile__bookmaker_id=filters.bookmaker_id)
    return entries


def counts(entries: QuerySet[RiskProfileChange], now: datetime) -> QueueCounts:
    """How many wait, by the player's current band and by how long they have waited."""
    by_band = dict(entries.order_by().values_list("profile__band").annotate(n=Count("id")))
    by_age = entries.aggregate(
        **{f"age_{i}": Count("id", filter=bucket.condition(now)) for i, bucket in enumerate(AGE_BUCKETS)}
    )
    return QueueCounts(
        total=sum(by_band.values()),
        by_band=tuple((band, by_band.get(band.value, 0)) for band in reversed(RiskBand)),
        by_age=tuple((bucket, by_age[f"age_{i}"]) for i, bucket in enumerate(AGE_BUCKETS)),
    )


def bookmakers(entries: QuerySet[RiskProfileChange]) -> list[int]:
    """The bookmaker ids that have a waiting player, for the filter."""
    return sorted(set(entries.order_by().values_list("profile__bookmaker_id", flat=True)))
