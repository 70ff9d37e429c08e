"""The health endpoint for monitors: ``GET <mount>/health/``.

HTTP 200 when the status is ``ok`` or ``degraded``, 503 when ``down``. The full body (reasons,
token expiry, beat age, breaker state...) goes to a staff session holding
``bettorsense.view_health``, or to a caller sending ``Authorization: Bearer <HEALTH_TOKEN>``;
anyone else gets the status word only. The metrics endpoint (``<mount>/metrics/``) answers the same
callers only.
"""

from __future__ import annotations

import hmac
import logging

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET

from bettorsense.conf import get_config
from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.health import report, rules
from bettorsense.health.fleet import take_fleet_health

logger = logging.getLogger(__name__)

VIEW_PERMISSION = "bettorsense.view_health"


@sensitive_variables("expected", "given")
def bearer_key_matches(request: HttpRequest) -> bool:
    """Whether the request carries the configured HEALTH_TOKEN (constant-time comparison)."""
    try:
        expected = get_config().health_token
    except BettorSenseConfigurationError:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def is_health_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    fleet = take_fleet_health()
    verdict = fleet.verdict
    full = is_health_staff(request) or bearer_key_matches(request)
    if verdict.status is rules.Status.DOWN:
        logger.warning("Health endpoint: down (%s)", ", ".join(reason.code for reason in verdict.reasons))
    response = JsonResponse(report.fleet_json(fleet, full=full), status=verdict.http_status)
    patch_vary_headers(response, ("Authorization", "Cookie"))
    return response


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition, to the same callers as the full health body; 404 without the extra."""
    from bettorsense import metrics as recording

    if not recording.available():
        raise Http404("prometheus_client is not installed (pip install bettorsense[prometheus]).")
    if not (is_health_staff(request) or bearer_key_matches(request)):
        response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="bettorsense"'
        patch_vary_headers(response, ("Authorization", "Cookie"))
        return response
    from prometheus_client import CONTENT_TYPE_LATEST

    from bettorsense.metrics.exposition import scrape

    response = HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
    patch_vary_headers(response, ("Authorization", "Cookie"))
    return response
