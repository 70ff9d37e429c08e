"""Retention: removing history, reviews and access-log rows older than their own settings.

* ``HISTORY_RETENTION``: score changes recorded longer ago are removed, except the latest change
  of each profile (it says how the current band came about) and any change a kept review answers.
* ``REVIEW_RETENTION``: reviews (the models of ``bettorsense.reviews``) recorded longer ago, except
  those a kept review refers to (a correction keeps the entry it corrects).
* ``ACCESS_LOG_RETENTION``: access-log rows written longer ago.

0 keeps a table forever. Rows go in batches of :data:`BATCH`, each its own statement, so a first
purge of a large table holds no long transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from bettorsense.conf import get_config
from bettorsense.models import RiskProfileChange
from bettorsense.privacy.models import AccessRecord

logger = logging.getLogger(__name__)

BATCH = 5000
_REVIEW_MODULE = "bettorsense.reviews"
# The recording time of a review row: the first of these fields its model has.
_REVIEW_TIME_FIELDS = ("recorded_at", "created_at", "at")


@dataclass(frozen=True)
class PurgeOutcome:
    table: str
    retention_days: float | None  # None: kept forever
    cutoff: datetime | None
    removed: int


def purge_expired(*, now: datetime | None = None, dry_run: bool = False) -> list[PurgeOutcome]:
    """Remove what is older than its retention setting; ``dry_run`` counts without removing."""
    config = get_config()
    moment = now or timezone.now()
    reviews = review_models()
    outcomes = []
    # Reviews first: a change is kept while a review answers it, so it may go right after its review.
    for model in reviews:
        time_field = next((name for name in _REVIEW_TIME_FIELDS if _has_field(model, name)), None)
        if time_field is None:
            logger.warning("Purge: %s has no recording time; its rows are kept", model._meta.label)
            continue
        outcomes.append(
            _purge(model, config.review_retention, moment, dry_run, _referenced_by(model, reviews), time_field)
        )
    outcomes.append(
        _purge(RiskProfileChange, config.history_retention, moment, dry_run, _kept_changes(reviews), "recorded_at")
    )
    outcomes.append(_purge(AccessRecord, config.access_log_retention, moment, dry_run, models.Q(pk__in=[]), "at"))
    return outcomes


def review_models() -> list[type[models.Model]]:
    return [
        model
        for model in apps.get_app_config("bettorsense").get_models()
        if model.__module__.startswith(_REVIEW_MODULE) and model._meta.managed
    ]


def _has_field(model: type[models.Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.concrete_fields)


def _kept_changes(reviews: list[type[models.Model]]) -> models.Q:
    """The changes that must stay: each profile's latest, and those a review row links to."""
    latest = RiskProfileChange.objects.filter(profile=OuterRef("profile")).order_by("-recorded_at", "-id")
    keep = models.Q(pk=Subquery(latest.values("pk")[:1]))
    return keep | _referenced_by(RiskProfileChange, reviews)


def _referenced_by(target: type[models.Model], reviews: list[type[models.Model]]) -> models.Q:
    """Rows of ``target`` that a review row links to (those rows are purged on their own schedule)."""
    keep = models.Q(pk__in=[])
    for model in reviews:
        for f in model._meta.concrete_fields:
            if isinstance(f, models.ForeignKey) and f.related_model is target:
                linked = model._default_manager.filter(**{f"{f.attname}__isnull": False}).values(f.attname)
                keep |= models.Q(pk__in=linked)
    return keep


def _purge(
    model: type[models.Model], retention: float, now: datetime, dry_run: bool, keep: models.Q, time_field: str
) -> PurgeOutcome:
    label = model._meta.label
    if retention <= 0:
        return PurgeOutcome(label, None, None, 0)
    cutoff = now - timedelta(seconds=retention)
    expired: models.QuerySet[Any] = (
        model._default_manager.filter(**{f"{time_field}__lt": cutoff})
        .exclude(keep)
        .order_by()
        .values_list("pk", flat=True)
    )
    if dry_run:
        return PurgeOutcome(label, retention / 86400, cutoff, expired.count())
    removed = 0
    while batch := list(expired[:BATCH]):
        model._default_manager.filter(pk__in=batch).delete()
        removed += len(batch)
    if removed:
        logger.info("Purge: %d %s rows older than %s removed", removed, label, cutoff.date().isoformat())
    return PurgeOutcome(label, retention / 86400, cutoff, removed)
