"""The health page in the Django admin: "Bettor Sense > Health", view only, for staff.

Follows django-rq's dashboard: the unmanaged :class:`~bettorsense.models.Health` model's
changelist renders ``admin/bettorsense/health.html`` (which extends ``admin/base_site.html``) from
a fresh snapshot. "Check now" POSTs to ``check/``, which runs the live probe, keeps its result in
the session and redirects back (post/redirect/get), so reloading the page does not probe again.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from . import health, probe, report, snapshot
from .models import Health

logger = logging.getLogger(__name__)

_PROBE_SESSION_KEY = "bettorsense_health_probe"


@admin.register(Health)
class HealthAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

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
        taken = snapshot.take_snapshot()
        verdict = health.evaluate(taken)
        stored = request.session.pop(_PROBE_SESSION_KEY, None)
        context = {
            **self.admin_site.each_context(request),
            "title": "Bettor Sense health",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "snapshot": taken,
            "health": verdict,
            "status_word": report.STATUS_WORDS[verdict.status],
            "page": _page(taken),
            "probe": probe.ProbeResult.from_json(stored) if isinstance(stored, dict) else None,
            "check_url": reverse(f"{self.admin_site.name}:bettorsense_health_check"),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/bettorsense/health.html", context)

    @method_decorator(never_cache)
    @method_decorator(require_POST)
    def check_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        result = probe.run_probe()
        logger.info("Health probe run from the admin by user id %s: %s", request.user.pk,
                    "ok" if result.ok else "failed")
        request.session[_PROBE_SESSION_KEY] = result.to_json()
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:bettorsense_health_changelist"))


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
        "call_ms": round(call.latency * 1000) if call else None,
        "checked_at": report.stamp(now),
        "beat_hint": health.BEAT_HINT,
        "cache_module": taken.cache.backend.rpartition(".")[0] if taken.cache else None,
        "cache_class": taken.cache.backend.rpartition(".")[2] if taken.cache else None,
    }
