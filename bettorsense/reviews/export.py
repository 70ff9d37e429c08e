"""The auditor's CSV of reviews and interactions for a date range: streamed, spreadsheet-safe.

A cell that a spreadsheet would read as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return, after any spaces) is prefixed with ``'``, so it is shown as text: a note
typed by staff, or an account id, cannot run in the auditor's spreadsheet. The rows are read in
chunks and written as they go, so a long range holds one chunk in memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import QuerySet

from bettorsense.reviews.models import Review

HEADER = (
    "review_id",
    "recorded_at",
    "recorded_by",
    "account_id",
    "bookmaker_id",
    "sub_bookmaker_id",
    "change_id",
    "band",
    "risk_score",
    "outcome",
    "method",
    "model_initiated",
    "note",
    "corrects_review_id",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CHUNK = 500


def neutralise(cell: str) -> str:
    """The cell as text a spreadsheet shows, never evaluates."""
    if cell.lstrip(" ").startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


def reviews_between(first: date, last: date) -> QuerySet[Review]:
    """Reviews recorded from the start of ``first`` to the end of ``last`` (UTC), oldest first."""
    reviews = Review.objects.filter(recorded_at__gte=datetime.combine(first, time.min, tzinfo=UTC))
    if last < date.max:  # the day after date.max does not exist
        reviews = reviews.filter(recorded_at__lt=datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC))
    return reviews.order_by("recorded_at", "id")


def accounts_between(first: date, last: date) -> list[str]:
    """The accounts an export of this range names, each once."""
    return list(reviews_between(first, last).order_by("account_id").values_list("account_id", flat=True).distinct())


def row(review: Review) -> tuple[str, ...]:
    values: tuple[Any, ...] = (
        review.pk,
        review.recorded_at.astimezone(UTC).isoformat(),
        review.recorded_by_username,
        review.account_id,
        review.bookmaker_id,
        review.sub_bookmaker_id,
        review.change_id if review.change_id is not None else "",
        review.get_band_display(),
        f"{review.risk_score:g}",
        review.outcome,
        review.method,
        "yes" if review.model_initiated else "no",
        review.note,
        review.corrects_id if review.corrects_id is not None else "",
    )
    return tuple(neutralise(str(value)) for value in values)


class _Line:
    """A file-like object whose ``write`` returns what it was given, for ``csv.writer``."""

    def write(self, text: str) -> str:
        return text


def csv_lines(reviews: Iterable[Review]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(HEADER)
    for review in reviews:
        yield writer.writerow(row(review))


def export_lines(first: date, last: date) -> Iterator[str]:
    return csv_lines(reviews_between(first, last).iterator(chunk_size=_CHUNK))
