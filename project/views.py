"""The demo's JSON edge: what a sportsbook backend's own endpoint over the service layer looks like.

Demo code, not part of the app: a host project writes its own view, behind its own authentication.
Two things it shows on the way:

* ``?fresh=1`` (skip the profile cache) costs a vendor call, so only a logged-in staff user gets it;
  for anyone else it is ignored silently and the normal (cached) answer comes back.
* An error body carries the typed error's class and its message, and nothing an outsider could use
  to map the set-up: no URL, no backoff timing, no hint naming a setting (those are in the logs, the
  exception's ``detail`` and ``hint``, and the health page).
"""

from __future__ import annotations

import math
import re

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from bettorsense import exceptions
from bettorsense.services import get_player_risk_profile

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")


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


def public_message(error: exceptions.BettorSenseError) -> str:
    """The error's message without the internals it may name (URLs, the fleet's backoff)."""
    if isinstance(error, exceptions.TokenBackoff):
        return "No valid token: the token endpoint failed recently."
    return _URL.sub("the vendor", error.message)


def wants_fresh(request: HttpRequest) -> bool:
    if request.GET.get("fresh") not in {"1", "true", "yes"}:
        return False
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


@require_GET
def risk_profile(request: HttpRequest, account_id: str) -> JsonResponse:
    try:
        profile = get_player_risk_profile(account_id, fresh=wants_fresh(request))
    except exceptions.BettorSenseError as error:
        status = status_for(error)
        response = JsonResponse({"error": type(error).__name__, "message": public_message(error)}, status=status)
        if error.retry_after is not None:
            response["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        return response
    return JsonResponse(profile.to_json())
