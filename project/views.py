"""The demo's JSON edge: what a sportsbook backend's own endpoint over the service layer looks like."""

from __future__ import annotations

import math

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from bettorsense import exceptions
from bettorsense.services import get_player_risk_profile

# Upstream refusals that need an operator (credentials, package, a vendor contract change): 502.
# Upstream unavailability that passes on its own (outage, throttling, backoff): 503 with Retry-After.
_BAD_GATEWAY = (
    exceptions.AuthenticationFailed,
    exceptions.AccessDenied,
    exceptions.BadResponse,
    exceptions.InvalidCredentials,
    exceptions.AudienceNotAllowed,
    exceptions.TokenRequestRejected,
    exceptions.MalformedTokenResponse,
    exceptions.InvalidInput,  # the vendor refused what we validated: a contract change
)


def status_for(error: exceptions.BettorSenseError) -> int:
    if isinstance(error, exceptions.InvalidInput) and error.status_code is None:
        return 400
    if isinstance(error, exceptions.ProfileUnavailable):
        return 404
    if isinstance(error, _BAD_GATEWAY):
        return 502
    return 503


@require_GET
def risk_profile(request: HttpRequest, account_id: str) -> JsonResponse:
    fresh = request.GET.get("fresh") in {"1", "true", "yes"}
    try:
        profile = get_player_risk_profile(account_id, fresh=fresh)
    except exceptions.BettorSenseError as error:
        status = status_for(error)
        response = JsonResponse({"error": type(error).__name__, "message": str(error)}, status=status)
        if error.retry_after is not None:
            response["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        return response
    return JsonResponse(profile.to_json())
