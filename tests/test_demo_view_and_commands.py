"""The demo's JSON view and the commands, and a property: no input reaches another route."""

from __future__ import annotations

import json
from collections.abc import Callable
from io import StringIO
from typing import Any
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bettorsense import exceptions
from bettorsense.exceptions import InvalidInput, ProfileUnavailable
from bettorsense.sandbox import Fault, SandboxServer
from bettorsense.services import get_player_risk_profile
from project.views import status_for

pytestmark = pytest.mark.django_db(transaction=True)

TRICKY = [
    "..",
    ".",
    "../..",
    "a/../b",
    "%2e%2e",
    "%",
    "%2F",
    "?page=2",
    "#x",
    "a;b",
    "a\\b",
    "~",
    "@",
    " ",
    "\u202e",
    "\U0001d518\U0001d52b\U0001d526",
    "ü",
    "x" * 64,
    "player_1/../../RiskProfiles/bookmakers/123/sub-bookmakers/456",
]
account_ids = st.one_of(
    st.sampled_from(TRICKY),
    st.text(min_size=0, max_size=70),
    st.text(alphabet="./%?#\\;:@&=+$, ", min_size=1, max_size=12),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(account=account_ids)
def test_sandbox_receives_exactly_the_intended_account_or_nothing(configure, sandbox, account):
    sandbox.state.requests.clear()
    try:
        get_player_risk_profile(account, fresh=True)
    except InvalidInput:
        assert list(sandbox.state.requests) == []
        return
    except ProfileUnavailable:
        pass
    received = list(sandbox.state.requests)
    assert [(r.route, r.account_id, r.bookmaker_id, r.sub_bookmaker_id) for r in received] == [
        ("profile", account, "123", "456")
    ]


def test_view_returns_the_profile(configure, sandbox, client):
    response = client.get("/players/player_1/risk-profile/")
    assert response.status_code == 200
    body = response.json()
    assert body["playerId"] == "player_1" and body["source"] == "api"
    assert body["band"] in {"no_risk", "low", "medium", "high", "very_high"}
    assert client.get("/players/player_1/risk-profile/").json()["source"] == "cache"


@pytest.mark.parametrize(
    ("path_account", "status", "error"),
    [
        ("nobody", 404, "PlayerNotFound"),
        ("player_97", 404, "ProfileNotCreated"),
        ("player_89", 404, "ProfileInactive"),
        ("x" * 65, 400, "InvalidInput"),
        ("x" * 10_000, 400, "InvalidInput"),
        ("a%00b", 400, "InvalidInput"),
    ],
)
def test_view_maps_errors(configure, sandbox, client, path_account, status, error):
    response = client.get(f"/players/{path_account}/risk-profile/")
    assert response.status_code == status
    assert response.json()["error"] == error


def test_view_outage_is_503_with_retry_after(configure, sandbox, client):
    configure(MAX_RETRIES=0)
    sandbox.state.add_fault(Fault(target="profile", kind="retry_after", status=429, retry_after=20))
    response = client.get("/players/player_1/risk-profile/?fresh=1")
    assert response.status_code == 503
    assert response["Retry-After"] == "20"


def test_view_upstream_refusal_is_502(configure, sandbox, client):
    configure(CLIENT_SECRET="not-the-secret")
    response = client.get("/players/player_1/risk-profile/")
    assert response.status_code == 502
    assert response.json()["error"] == "InvalidCredentials"
    assert "not-the-secret" not in response.content.decode()


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        (Fault(target="profile", kind="status", status=400), 502, "InvalidInput"),
        (Fault(target="profile", kind="status", status=403), 502, "AccessDenied"),
        (Fault(target="profile", kind="non_json"), 502, "BadResponse"),
        (Fault(target="profile", kind="status", status=500), 503, "ServiceUnavailable"),
        (Fault(target="token", kind="status", status=503), 503, "TokenServerError"),
    ],
)
def test_view_sorts_vendor_failures_into_operator_and_retry(
    configure: Callable[..., dict[str, Any]],
    sandbox: SandboxServer,
    client: Client,
    fault: Fault,
    status: int,
    error: str,
) -> None:
    configure(MAX_RETRIES=0)
    sandbox.state.add_fault(fault)
    response = client.get("/players/player_1/risk-profile/?fresh=1")
    assert (response.status_code, response.json()["error"]) == (status, error)


# The view's answer for every error class, as the hand-written list of 502s gave it before the kinds.
VIEW_STATUS_BY_ERROR = {
    "BettorSenseError": 503,
    "TransientError": 503,
    "OperatorActionRequired": 502,
    "TokenError": 503,
    "InvalidCredentials": 502,
    "AudienceNotAllowed": 502,
    "TokenRequestRejected": 502,
    "TokenRateLimited": 503,
    "TokenServerError": 503,
    "TokenTimeout": 503,
    "TokenEndpointUnreachable": 503,
    "MalformedTokenResponse": 502,
    "TokenRedirected": 502,
    "TokenBackoff": 503,
    "TokenWaitTimeout": 503,
    "InvalidInput": 400,
    "AuthenticationFailed": 502,
    "AccessDenied": 502,
    "ProfileUnavailable": 404,
    "PlayerNotFound": 404,
    "ProfileNotCreated": 404,
    "ProfileInactive": 404,
    "RateLimited": 503,
    "ServiceUnavailable": 503,
    "BadResponse": 502,
    "AccessNotRecorded": 503,
    "ErasureRefused": 400,
}


def test_view_status_of_every_error_class() -> None:
    classes = {
        name: cls
        for name, cls in vars(exceptions).items()
        if isinstance(cls, type) and issubclass(cls, exceptions.BettorSenseError)
    }
    assert {name: status_for(cls("x")) for name, cls in classes.items()} == VIEW_STATUS_BY_ERROR
    assert status_for(exceptions.InvalidInput("refused", status_code=400)) == 502


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(account=account_ids.filter(bool))
def test_view_never_answers_500(configure, sandbox, client, account):
    sandbox.state.requests.clear()
    response = client.get("/players/" + quote(account, safe="") + "/risk-profile/?fresh=1")
    assert response.status_code in {200, 400, 404}
    assert all(r.route == "profile" for r in sandbox.state.requests)


def test_profile_command(configure, sandbox):
    out = StringIO()
    call_command("bettorsense_profile", "player_1", stdout=out)
    assert "player_1" in out.getvalue() and "Risk score" in out.getvalue()
    out = StringIO()
    call_command("bettorsense_profile", "player_1", "--json", stdout=out)
    assert json.loads(out.getvalue())["playerId"] == "player_1"
    with pytest.raises(CommandError, match="PlayerNotFound"):
        call_command("bettorsense_profile", "nobody", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("bettorsense_profile", stdout=StringIO())


def test_profile_command_streams_json_lines(configure, sandbox):
    sandbox.state.set_config(page_size=1000)
    day = sandbox.state.advance_day()
    out = StringIO()
    call_command("bettorsense_profile", "--all", "--since", day.isoformat(), stdout=out)
    lines = out.getvalue().splitlines()
    assert 100 < len(lines) < 1000
    assert all(json.loads(line)["lastUpdatedDateTime"].startswith(day.isoformat()) for line in lines)
    with pytest.raises(CommandError, match="not an ISO-8601"):
        call_command("bettorsense_profile", "--all", "--since", "yesterday", stdout=StringIO())


def test_token_command(configure, sandbox):
    with pytest.raises(CommandError, match="No token"):
        call_command("bettorsense_token", stdout=StringIO())
    out = StringIO()
    call_command("bettorsense_token", "--refresh", stdout=out)
    text = out.getvalue()
    assert "Renewed: sha256:" in text and "Expires in:" in text and "by manual, ok" in text
    assert "eyJ" not in text and "demo-client-secret" not in text
    configure(CLIENT_SECRET="wrong")
    with pytest.raises(CommandError, match="rejected the client credentials"):
        call_command("bettorsense_token", "--refresh", stdout=StringIO())


def test_demo_serves_the_admin_stylesheet_without_debug(client, settings):
    settings.DEBUG = False
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"body" in b"".join(response.streaming_content)
