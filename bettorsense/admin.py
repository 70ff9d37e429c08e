"""The admin: the health page, and the local store's profiles and sync runs (all read-only).

The health page is "Bettor Sense > Health", view only, for staff.

Follows django-rq's dashboard: the unmanaged :class:`~bettorsense.models.Health` model's
changelist renders ``admin/bettorsense/health.html`` (which extends ``admin/base_site.html``) from
a fresh snapshot. "Check now" POSTs to ``check/``, which runs the live probe, keeps its result in
the session and redirects back (post/redirect/get), so reloading the page does not probe again.

The two buttons that cost vendor calls need a permission beyond view: "Check now" needs
``bettorsense.run_probe`` (and is throttled fleet-wide, see :mod:`bettorsense.health.probe`), "Start
an incremental sync" needs ``bettorsense.start_sync`` (and queues at most one sync at a time).
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from bettorsense import charts, factors
from bettorsense.cache import BestEffortCache, cache_key
from bettorsense.conf import get_config
from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.health import probe, report
from bettorsense.health import rules as health
from bettorsense.health.fleet import SetHealth, take_fleet_health
from bettorsense.models import Health, PlayerRiskProfile, SyncRun
from bettorsense.privacy.access import Through, record_access, record_listed_accesses
from bettorsense.read_only_admin import ModelAdmin, ReadOnlyAdmin

logger = logging.getLogger(__name__)

_PROBE_SESSION_KEY = "bettorsense_health_probe"
RUN_PROBE_PERMISSION = "bettorsense.run_probe"
START_SYNC_PERMISSION = "bettorsense.start_sync"

_sync_queue = BestEffortCache("Admin sync button", logger)


@admin.register(Health)
class HealthAdmin(ReadOnlyAdmin):
    def get_urls(self) -> list[URLPattern]:
        """The page and its "Check now" only: there are no objects to add, change, delete or list."""
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name=f"{prefix}_changelist"),
            path("check/", view(self.check_view), name=f"{prefix}_check"),
        ]

    @method_decorator(never_cache)
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        fleet = take_fleet_health()
        taken, verdict = fleet.default, fleet.verdict
        stored = request.session.pop(_PROBE_SESSION_KEY, None)
        pressed = _pressed_probe(stored)
        context = {
            **self.admin_site.each_context(request),
            "title": "Bettor Sense health",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "snapshot": taken,
            "health": verdict,
            "status_word": report.STATUS_WORDS[verdict.status],
            "page": _page(taken),
            "credential_sets": [_set_row(one) for one in fleet.sets] if len(fleet.sets) > 1 else [],
            "probe": pressed.result if pressed else None,
            "probe_pressed": pressed is not None,
            "probe_reused": pressed is not None and not pressed.ran,
            "probe_age": report.duration(taken.taken_at - pressed.result.at) if pressed and pressed.result else None,
            "probe_every": f"{probe.PROBE_EVERY:g}",
            "can_run_probe": self.has_run_probe_permission(request),
            "check_url": reverse(f"{self.admin_site.name}:bettorsense_health_check"),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/bettorsense/health.html", context)

    @method_decorator(never_cache)
    @method_decorator(require_POST)
    def check_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request) or not self.has_run_probe_permission(request):
            raise PermissionDenied
        pressed = probe.run_throttled_probe()
        if pressed.ran and pressed.result is not None:
            logger.info(
                "Health probe run from the admin by user id %s: %s",
                request.user.pk,
                "ok" if pressed.result.ok else "failed",
            )
        request.session[_PROBE_SESSION_KEY] = {
            "ran": pressed.ran,
            "result": None if pressed.result is None else pressed.result.to_json(),
        }
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:bettorsense_health_changelist"))

    def has_run_probe_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PROBE_PERMISSION)


def _pressed_probe(stored: Any) -> probe.ThrottledProbe | None:
    """The press kept in the session by ``check_view``, if any."""
    if not isinstance(stored, dict):
        return None
    result = stored.get("result")
    try:
        return probe.ThrottledProbe(
            probe.ProbeResult.from_json(result) if isinstance(result, dict) else None, ran=bool(stored.get("ran"))
        )
    except (KeyError, TypeError, ValueError):  # a session written by another version
        return None


def _page(taken: health.Snapshot) -> dict[str, Any]:
    """Display strings the template cannot compute (times, durations, ages)."""
    now = taken.taken_at
    fleet = taken.fleet
    token = taken.token
    call = taken.last_api_call
    renewal = fleet.last_renewal if fleet else None
    error = fleet.last_error if fleet else None
    return {
        "token_issued": report.when(token.issued_at, now) if token else None,
        # Unlocalised, for the countdown script (floatformat would write "540,2" in some locales).
        "token_expires_in": f"{taken.token_expires_in:.1f}" if token else None,
        "token_expires_in_words": report.duration(taken.token_expires_in or 0.0) if token else None,
        "token_expires_at": report.iso(token.expires_at) if token else None,
        "renewal_when": report.when(renewal.at, now) if renewal else None,
        "renewal_ms": round(renewal.duration * 1000) if renewal else None,
        "error_when": report.when(error.at, now) if error else None,
        "backoff_in": report.duration(taken.backoff.until - now) if taken.backoff else None,
        "beat_when": report.when(fleet.beat_last_run, now) if fleet else None,
        "beat_stale_after": report.duration(taken.beat_stale_after) if taken.beat_stale_after else None,
        "call_when": report.when(call.at, now) if call else None,
        "call_outcome": report.outcome_words(call.outcome) if call else None,
        "call_ms": round(call.latency * 1000) if call else None,
        "checked_at": report.stamp(now),
        # Why the fleet's figures are missing: invalid settings read no cache at all.
        "unknown_why": "the settings are invalid" if taken.config_error is not None else "cache unreachable",
        "beat_outcome": report.beat_outcome_words(fleet.beat_last_outcome) if fleet else None,
        "schedule": report.schedule_words(taken),
        "sync_stale_after": report.duration(taken.config.sync_stale_after) if taken.config else None,
        "sync_success_when": report.when(taken.sync.last_success_at, now) if taken.sync else None,
        "sync_failed_when": report.when(taken.sync.last_finished_at, now) if taken.sync else None,
        "beat_hint": health.BEAT_HINT,
        "cache_module": taken.cache.backend.rpartition(".")[0] if taken.cache else None,
        "cache_class": taken.cache.backend.rpartition(".")[2] if taken.cache else None,
    }


def _set_row(one: SetHealth) -> dict[str, Any]:
    """One credential set's line in the page's table of sets."""
    taken, now = one.snapshot, one.snapshot.taken_at
    config, token, fleet = taken.config, taken.token, taken.fleet
    return {
        "name": one.client,
        "status": one.verdict.status,
        "status_word": report.STATUS_WORDS[one.verdict.status],
        "client_id": config.client_id if config else None,
        "bookmaker": f"{config.bookmaker_id} / {config.sub_bookmaker_id}" if config else None,
        "token": f"{token.fingerprint}, {report.duration(taken.token_expires_in or 0.0)} left" if token else None,
        "beat": report.when(fleet.beat_last_run, now) if fleet else None,
        "breaker": str(taken.breaker) if taken.breaker is not None else None,
        "sync": report.when(taken.sync.last_success_at, now) if taken.sync else None,
        "reasons": [reason.message for reason in one.verdict.reasons],
    }


class ScoreRangeFilter(admin.SimpleListFilter):
    title = "risk score"
    parameter_name = "score"
    ranges: tuple[tuple[str, str, float, float], ...] = (
        ("0-49", "below 50", 0, 50),
        ("50-67", "50 to 67", 50, 68),
        ("68-94", "68 to 94", 68, 95),
        ("95-98", "95 to 98", 95, 99),
        ("99-100", "99 and 100", 99, 101),
    )

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin) -> list[tuple[str, str]]:
        return [(key, label) for key, label, _, _ in self.ranges]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        for key, _, low, high in self.ranges:
            if self.value() == key:
                return queryset.filter(risk_score__gte=low, risk_score__lt=high)
        return queryset


@admin.register(PlayerRiskProfile)
class PlayerRiskProfileAdmin(ReadOnlyAdmin):
    class Media:
        css = {"all": ("bettorsense/admin.css",)}

    list_display = ("account_id", "client", "band", "risk_score", "percentile", "last_updated", "changed_at")
    list_filter = ("client", "band", ScoreRangeFilter, "changed_at", "bookmaker_id")
    search_fields = ("account_id",)
    date_hierarchy = "changed_at"
    ordering = ("-risk_score", "account_id")
    fields = (
        "account_id",
        "client",
        "bookmaker_id",
        "sub_bookmaker_id",
        "band",
        "risk_score",
        "risk_category",
        "percentile",
        "last_updated",
        "fetched_at",
        "changed_at",
        "category_chart",
        "score_through_time",
        "history",
    )
    readonly_fields = fields

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        shown = getattr(response, "context_data", None) or {}
        if isinstance(shown.get("original"), PlayerRiskProfile):
            record_access(user=request.user, account_id=shown["original"].account_id, through=Through.PROFILE)
        return response

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        record_listed_accesses(request, response, through=Through.PROFILE, purpose="profile list")
        return response

    @admin.display(description="Category scores")
    def category_chart(self, obj: PlayerRiskProfile) -> str:
        """One bar per factor, right of the axis when it raises the risk, left when it lowers it."""
        scores = factors.from_json(obj.category_scores)
        widest = max((abs(c.score) for c in scores), default=1.0) or 1.0
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td class="bs-bar-cell"><span class="bs-bar {}" style="width:{}%"></span></td>'
            "<td>{}</td></tr>",
            (
                (
                    c.name,
                    "bs-up" if c.score > 0 else "bs-down",
                    round(abs(c.score) / widest * 50, 1),
                    f"{c.score:+.3f}",
                )
                for c in scores
            ),
        )
        return format_html(
            "<style>.bs-bar-cell{{width:240px;position:relative}}.bs-bar{{display:inline-block;height:10px}}"
            ".bs-up{{background:#ba2121;margin-left:50%}}.bs-down{{background:#417690;float:right;"
            "margin-right:50%}}</style><table>{}</table>",
            rows,
        )

    @admin.display(description="Score through time")
    def score_through_time(self, obj: PlayerRiskProfile) -> str:
        changes = obj.changes.order_by("-recorded_at", "-id")
        latest = list(changes[: charts.MAX_POINTS])[::-1]
        chart = charts.score_chart(latest, total=changes.count())
        return render_to_string("admin/bettorsense/playerriskprofile/score_chart.html", {"chart": chart})

    @admin.display(description="History")
    def history(self, obj: PlayerRiskProfile) -> str:
        changes = obj.changes.select_related("sync_run")[:30]
        return format_html(
            "<table><tr><th>Recorded</th><th>At Sportradar</th><th>Score</th><th>Band</th><th>Percentile</th>"
            "<th>Before</th><th>Sync run</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        f"{c.recorded_at:%Y-%m-%d %H:%M}",
                        f"{c.last_updated:%Y-%m-%d %H:%M}" if c.last_updated else "-",
                        f"{c.risk_score:g}",
                        c.get_band_display(),
                        "-" if c.percentile is None else f"{c.percentile:g}",
                        "new"
                        if c.previous_score is None
                        else f"{c.previous_score:g} ({c.get_previous_band_display()})",
                        c.sync_run_id or "-",
                    )
                    for c in changes
                ),
            ),
        )


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "client",
        "mode",
        "status",
        "pages",
        "profiles_seen",
        "profiles_created",
        "profiles_changed",
        "signals_sent",
        "initial_load",
        "watermark_reached",
        "heartbeat_at",
        "finished_at",
    )
    list_filter = ("client", "status", "mode", "initial_load")
    change_list_template = "admin/bettorsense/syncrun/change_list.html"

    def has_start_sync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(START_SYNC_PERMISSION)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {"can_start_sync": self.has_start_sync_permission(request), **(extra_context or {})}
        return super().changelist_view(request, context)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_start"
        return [path("start/", self.admin_site.admin_view(self.start_view), name=name), *super().get_urls()]

    @method_decorator(require_POST)
    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_staff or not self.has_view_permission(request):
            raise PermissionDenied
        if not self.has_start_sync_permission(request):
            raise PermissionDenied
        from bettorsense.tasks import sync_risk_profiles

        if _claim_sync_queue():
            sync_risk_profiles.delay()
            logger.info("Incremental sync queued from the admin by user id %s", request.user.pk)
            self.message_user(request, "An incremental sync was queued; it appears here when a worker runs it.")
        else:
            self.message_user(
                request,
                "A sync is already queued and has not started yet (or the cache is unavailable); nothing was queued.",
                level=messages.WARNING,
            )
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:bettorsense_syncrun_changelist"))


def _claim_sync_queue() -> bool:
    """Whether this press may queue a sync: no sync queued from here has started since the last run.

    The marker is named after the latest SyncRun, so it frees itself when the queued sync starts
    (a new run appears) and needs no clearing by the task; its TTL (SYNC_LOCK_TTL) frees it too if
    the queued task is lost. The one ``add`` is atomic, so concurrent presses queue one sync.
    """
    try:
        config = get_config()
    except BettorSenseConfigurationError:
        return True  # the sync fails at once and records why; nothing to protect
    latest = SyncRun.objects.order_by("-id").values_list("id", flat=True).first() or 0
    marker = cache_key(config, f"sync:queued-after-run:{latest}")
    return _sync_queue.add(config, marker, latest, config.sync_lock_ttl, on_failure=False)


from bettorsense.privacy import admin as _privacy_admin  # noqa: E402,F401  (registers the access log)
from bettorsense.reviews import admin as reviews_admin  # noqa: E402, F401  (registers the review queue and the record)
