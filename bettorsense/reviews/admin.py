"""The review queue, the review form, the interaction record and its export, in the admin.

- "Bettor Sense > Review queue" (the unmanaged ``ReviewQueue``): players waiting for a review, for
  staff who may see risk data (``bettorsense.view_playerriskprofile``). Each row's "Review" opens
  the form, which needs ``bettorsense.record_review`` as well.
- "Bettor Sense > Reviews": the record, view only (``bettorsense.view_review``); nothing in it is
  changed or deleted. "Record a correction" on a review needs ``record_review``; "Export CSV" needs
  ``bettorsense.export_reviews``.

Each page that shows a player's risk data records the look in the access log
(:mod:`bettorsense.privacy.access`), through "queue" (the queue, the forms, the record's list and
pages, told apart by the purpose) or "export" (one record per account in the export).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.timesince import timesince
from django.views.decorators.cache import never_cache

from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.models import RiskProfileChange
from bettorsense.privacy.access import Through, record_access, record_accesses, record_listed_accesses
from bettorsense.profiles import RiskBand
from bettorsense.read_only_admin import ModelAdmin, ReadOnlyAdmin
from bettorsense.reviews import export, queue
from bettorsense.reviews.forms import ExportForm, ReviewForm
from bettorsense.reviews.models import Review, ReviewQueue
from bettorsense.reviews.recording import record_review

logger = logging.getLogger(__name__)

VIEW_RISK_PERMISSION = "bettorsense.view_playerriskprofile"
RECORD_REVIEW_PERMISSION = "bettorsense.record_review"
EXPORT_REVIEWS_PERMISSION = "bettorsense.export_reviews"
QUEUE_PAGE_SIZE = 100
EARLIER_REVIEWS_SHOWN = 20


def _can_record(request: HttpRequest) -> bool:
    return request.user.has_perm(VIEW_RISK_PERMISSION) and request.user.has_perm(RECORD_REVIEW_PERMISSION)


def _level(request: HttpRequest) -> RiskBand:
    try:
        return queue.review_level()
    except BettorSenseConfigurationError as err:
        messages.error(request, f"{err} The queue uses the default level, High, until it is fixed.")
        return RiskBand.HIGH


@admin.register(ReviewQueue)
class ReviewQueueAdmin(ReadOnlyAdmin):
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(VIEW_RISK_PERMISSION)

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name=f"{prefix}_changelist"),
            path("<int:change_id>/review/", view(self.review_view), name=f"{prefix}_review"),
        ]

    @method_decorator(never_cache)
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        level = _level(request)
        entries = queue.queued(level)
        filters = queue.QueueFilters.from_query(request.GET.dict())
        page = Paginator(queue.filtered(entries, filters, now), QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
        tally = queue.counts(entries, now)
        can_record = _can_record(request)
        review_url = f"{self.admin_site.name}:bettorsense_reviewqueue_review"
        context = {
            **self.admin_site.each_context(request),
            "title": "Review queue",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "level": level,
            "counts": tally,
            "band_links": [
                (band.label, n, _query(filters, band=band.value), filters.band == band) for band, n in tally.by_band
            ],
            "age_links": [
                (bucket.label, n, _query(filters, age=bucket.key), filters.age == bucket) for bucket, n in tally.by_age
            ],
            "bookmaker_links": [
                (str(b), _query(filters, bookmaker=b), filters.bookmaker_id == b) for b in queue.bookmakers(entries)
            ],
            "clear_url": "?",
            "filtered": filters != queue.QueueFilters(),
            "page": page,
            "rows": [
                {
                    "change": change,
                    "profile": change.profile,
                    "waited": timesince(change.recorded_at, now),
                    "review_url": reverse(review_url, args=[change.pk]) if can_record else "",
                }
                for change in page.object_list
            ],
            "page_query": _query(filters),
            **(extra_context or {}),
        }
        record_accesses(
            user=request.user,
            account_ids=[row["profile"].account_id for row in context["rows"]],
            through=Through.QUEUE,
            purpose="review queue",
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/bettorsense/reviews/queue.html", context)

    @method_decorator(never_cache)
    def review_view(self, request: HttpRequest, change_id: int) -> HttpResponse:
        if not _can_record(request):
            raise PermissionDenied
        change = get_object_or_404(RiskProfileChange.objects.select_related("profile"), pk=change_id)
        return _review_page(self, request, account_id=change.profile.account_id, change=change, corrects=None)


def _query(filters: queue.QueueFilters, **changes: Any) -> str:
    """The page's query string with ``changes`` applied; a filter given its current value is removed."""
    current: dict[str, Any] = {
        "band": filters.band.value if filters.band is not None else None,
        "age": filters.age.key if filters.age is not None else None,
        "bookmaker": filters.bookmaker_id,
    }
    for name, value in changes.items():
        current[name] = None if current[name] == value else value
    return "?" + urlencode({name: value for name, value in current.items() if value is not None})


def _review_page(
    model_admin: ModelAdmin,
    request: HttpRequest,
    *,
    account_id: str,
    change: RiskProfileChange | None,
    corrects: Review | None,
) -> HttpResponse:
    """The form; on a valid POST, the recorded review and a redirect (a correction: to its own page)."""
    form = ReviewForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            review = record_review(user=request.user, change=change, corrects=corrects, **form.cleaned_data)
        except ValidationError as err:
            form.add_record_errors(err)
        else:
            # Messages may travel in a cookie: the review's number, not the account or the outcome.
            site = model_admin.admin_site.name
            if corrects is not None:
                messages.success(request, f"Correction recorded (review {review.pk}).")
                return HttpResponseRedirect(reverse(f"{site}:bettorsense_review_change", args=[review.pk]))
            messages.success(request, f"Review recorded (review {review.pk}).")
            return HttpResponseRedirect(reverse(f"{site}:bettorsense_reviewqueue_changelist"))
    profile = change.profile if change is not None else corrects.profile if corrects is not None else None
    earlier = Review.objects.filter(account_id=account_id)[:EARLIER_REVIEWS_SHOWN]
    # Someone else may have answered it since the queue was loaded; a second review is kept too.
    answered = change is not None and corrects is None and change.reviews.exists()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Correct review {corrects.pk}" if corrects is not None else f"Review account {account_id}",
        "opts": ReviewQueue._meta,
        "app_label": "bettorsense",
        "form": form,
        "change": change,
        "profile": profile,
        "account_id": account_id,
        "corrects": corrects,
        "earlier": earlier,
        "answered": answered,
        "queue_url": reverse(f"{model_admin.admin_site.name}:bettorsense_reviewqueue_changelist"),
    }
    record_access(
        user=request.user,
        account_id=account_id,
        through=Through.QUEUE,
        purpose="review correction form" if corrects is not None else "review form",
    )
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/bettorsense/reviews/record.html", context)


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    """The record: view only; a correction is a new review, recorded from a review's page."""

    list_display = (
        "recorded_at",
        "account_id",
        "band",
        "risk_score",
        "outcome",
        "method",
        "model_initiated",
        "recorded_by_username",
        "corrects",
    )
    list_filter = ("outcome", "method", "model_initiated", "recorded_at", "bookmaker_id")
    list_select_related = ("corrects",)
    search_fields = ("account_id",)
    date_hierarchy = "recorded_at"
    fields = (
        "account_id",
        "bookmaker_id",
        "sub_bookmaker_id",
        "change",
        "band",
        "risk_score",
        "outcome",
        "method",
        "model_initiated",
        "note",
        "corrects",
        "recorded_by_username",
        "recorded_at",
    )
    readonly_fields = fields
    change_list_template = "admin/bettorsense/reviews/review_change_list.html"
    change_form_template = "admin/bettorsense/reviews/review_change_form.html"

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("export/", view(self.export_view), name=f"{prefix}_export"),
            path("<int:review_id>/correct/", view(self.correct_view), name=f"{prefix}_correct"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {"can_export": request.user.has_perm(EXPORT_REVIEWS_PERMISSION), **(extra_context or {})}
        response = super().changelist_view(request, context)
        record_listed_accesses(request, response, through=Through.QUEUE, purpose="reviews list")
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"can_correct": _can_record(request), **(extra_context or {})}
        response = super().change_view(request, object_id, form_url, context)
        shown = getattr(response, "context_data", None) or {}
        if isinstance(shown.get("original"), Review):
            record_access(
                user=request.user, account_id=shown["original"].account_id, through=Through.QUEUE, purpose="review page"
            )
        return response

    @method_decorator(never_cache)
    def correct_view(self, request: HttpRequest, review_id: int) -> HttpResponse:
        if not _can_record(request):
            raise PermissionDenied
        corrected = get_object_or_404(Review.objects.select_related("change__profile", "profile"), pk=review_id)
        return _review_page(self, request, account_id=corrected.account_id, change=corrected.change, corrects=corrected)

    @method_decorator(never_cache)
    def export_view(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        if not request.user.has_perm(EXPORT_REVIEWS_PERMISSION):
            raise PermissionDenied
        form = ExportForm(request.GET if request.GET else None)
        if form.is_bound and form.is_valid():
            first, last = form.cleaned_data["first"], form.cleaned_data["last"]
            # Recorded before the first row is sent: an export whose looks cannot be logged is not sent.
            record_accesses(
                user=request.user,
                account_ids=export.accounts_between(first, last),
                through=Through.EXPORT,
                purpose=f"reviews export {first} to {last}",
            )
            logger.info("Reviews from %s to %s exported by user id %s", first, last, request.user.pk)
            response = StreamingHttpResponse(export.export_lines(first, last), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="bettorsense-reviews-{first}-to-{last}.csv"'
            return response
        context = {
            **self.admin_site.each_context(request),
            "title": "Export reviews and interactions",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "form": form,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/bettorsense/reviews/export.html", context, status=400 if form.is_bound else 200
        )
