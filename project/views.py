"""The demo's JSON edge: what a sportsbook backend's own endpoint over the service layer looks like."""

from __future__ import annotations

import math

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from bettorsense import exceptions
from bettorsense.services import get_player_risk_profile


def status_for(error: exceptions.BettorSenseError) -> int:
    """400 and 404 for the caller's input and the player; 502 when it needs an operator; else 503."""
    if isinstance(error, exceptions.InvalidInput):
        # With a status code it is the vendor refusing what we validated: a contract change.
        return 400 if error.status_code is None else 502
    if isinstance(error, exceptions.ProfileUnavailable):
        return 404
    if isinstance(error, exceptions.OperatorActionRequired):
        return 502
    # Transient errors pass on their own (outage, throttling, backoff): 503, with Retry-After if known.
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
