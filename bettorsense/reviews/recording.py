"""Record a review: who and when from the caller's request, the rest validated, then the signal.

The outcome, method, flag and note are what a person chose; the account, band and score are
copied from the change answered (or from the review corrected), and the user and the time are
taken here, never from a form.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from bettorsense.models import RiskProfileChange
from bettorsense.reviews.models import Review
from bettorsense.reviews.signals import review_recorded

logger = logging.getLogger(__name__)


def record_review(
    *,
    user: AbstractBaseUser | AnonymousUser,
    change: RiskProfileChange | None = None,
    corrects: Review | None = None,
    outcome: str,
    method: str = "",
    model_initiated: bool = False,
    note: str = "",
) -> Review:
    """Record one review of ``change``, or a correction of ``corrects`` (which answers its change).

    Raises ``ValidationError`` for a combination the record refuses (see ``Review.clean``).
    ``review_recorded`` is sent once, after the transaction that holds the row commits.
    """
    if not user.is_authenticated or user.pk is None:
        raise ValueError("A review is recorded by a signed-in user.")
    if corrects is not None:
        change = corrects.change
    review = Review(
        corrects=corrects,
        outcome=outcome,
        method=method,
        model_initiated=model_initiated,
        note=note,
        recorded_by_id=user.pk,
        recorded_by_username=str(user.get_username())[:150],
        recorded_at=timezone.now(),
        **_subject(change, corrects),
    )
    review.full_clean()
    with transaction.atomic():
        review.save()
        transaction.on_commit(lambda: _send_recorded(review))
    logger.info("Review %s recorded by user id %s", review.pk, user.pk)
    return review


def _subject(change: RiskProfileChange | None, corrects: Review | None) -> dict[str, Any]:
    """What the review is about: the change answered, else (its history expired) the corrected review's."""
    if change is not None:
        profile = change.profile
        return {
            "change": change,
            "profile": profile,
            "account_id": profile.account_id,
            "bookmaker_id": profile.bookmaker_id,
            "sub_bookmaker_id": profile.sub_bookmaker_id,
            "band": change.band,
            "risk_score": change.risk_score,
        }
    if corrects is None:
        raise ValueError("A review answers a change or corrects a review.")
    return {
        "change": None,
        "profile": corrects.profile,
        "account_id": corrects.account_id,
        "bookmaker_id": corrects.bookmaker_id,
        "sub_bookmaker_id": corrects.sub_bookmaker_id,
        "band": corrects.band,
        "risk_score": corrects.risk_score,
    }


def _send_recorded(review: Review) -> None:
    """After the commit: a failing receiver is logged and does not stop the others."""
    for receiver, response in review_recorded.send_robust(sender=Review, review=review):
        if isinstance(response, Exception):
            logger.error(
                "review_recorded receiver %r failed for review %s",
                receiver,
                review.pk,
                exc_info=(type(response), response, response.__traceback__),
            )
