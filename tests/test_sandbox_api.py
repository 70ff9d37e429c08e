"""The sandbox's Bettor Sense API: routing, auth, validation, profiles, over real HTTP."""

from __future__ import annotations

import http.client
import re
from datetime import date

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bettorsense.sandbox import SandboxServer, SandboxState, profiles
from tests.support.sandbox import CLIENT_ID, PROD, bearer, fetch_token, fresh_state, get, profile_url

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T00:14:00Z$")
CATEGORY_KEYS = {1, 2, 3, 4, 5, 6, 8}


@pytest.fixture
def state(server):
    return fresh_state(server)


@pytest.fixture
def token(server, state):
    return fetch_token(server)


def problem_of(response: requests.Response) -> dict:
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "traceId"}
    assert body["status"] == response.status_code
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", body["traceId"])
    return body


def test_profile_has_the_vendor_shape(server, token):
    response = get(profile_url(server, "player_1"), token)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    assert list(body) == [
        "playerId",
        "lastUpdatedDateTime",
        "riskScore",
        "riskCategory",
        "percentile",
        "categoryScores",
    ]
    assert body["playerId"] == "player_1"
    assert TIMESTAMP.match(body["lastUpdatedDateTime"])
    assert isinstance(body["riskScore"], int) and 1 <= body["riskScore"] <= 100
    assert body["riskCategory"] == profiles.risk_category(body["riskScore"])
    assert isinstance(body["percentile"], float) and 0 <= body["percentile"] <= 100
    scores = body["categoryScores"]
    assert {item["key"] for item in scores} == CATEGORY_KEYS
    assert all(list(item) == ["key", "name", "score"] for item in scores)
    assert {item["key"]: item["name"] for item in scores} == profiles.CATEGORY_NAMES
    assert [item["score"] for item in scores] == sorted((item["score"] for item in scores), reverse=True)


def test_profiles_are_deterministic_per_seed(server):
    fresh_state(server, seed=7)
    first = get(profile_url(server, "player_42"), fetch_token(server)).json()
    fresh_state(server, seed=7)
    again = get(profile_url(server, "player_42"), fetch_token(server)).json()
    fresh_state(server, seed=8)
    other = get(profile_url(server, "player_42"), fetch_token(server)).json()

    assert first == again
    assert first != other


def test_both_prefixes_serve_with_their_own_audience(server, token):
    prod_token = fetch_token(server, PROD)

    assert get(profile_url(server, "player_1", "production"), prod_token).status_code == 200
    assert get(profile_url(server, "player_1", "integration"), token).status_code == 200
    assert get(profile_url(server, "player_1", "production"), token).status_code == 401
    assert get(profile_url(server, "player_1", "integration"), prod_token).status_code == 401


@pytest.mark.parametrize(
    ("account", "title"),
    [
        ("nobody", "Player not found"),
        ("player_0", "Player not found"),
        ("player_5001", "Player not found"),
        ("player_01", "Player not found"),
        ("player_97", "Player profile not created"),
        ("player_194", "Player profile not created"),
        ("not_created_abc", "Player profile not created"),
        ("player_89", "Player profile is inactive"),
        ("inactive_abc", "Player profile is inactive"),
    ],
)
def test_the_three_404s(server, token, account, title):
    response = get(profile_url(server, account), token)

    assert response.status_code == 404
    body = problem_of(response)
    assert body["title"] == title
    assert title in body["detail"]
    assert account in body["detail"]


class TestBearer:
    def test_missing_token(self, server, state):
        response = get(profile_url(server, "player_1"))

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert problem_of(response)["title"] == "Unauthorized"

    @pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer   "])
    def test_not_a_bearer_token(self, server, state, header):
        response = requests.get(profile_url(server, "player_1"), headers={"Authorization": header}, timeout=5)

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"

    @pytest.mark.parametrize("token", ["abc", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "ünïcode.x.y"])
    def test_malformed_token(self, server, state, token):
        response = requests.get(
            profile_url(server, "player_1"), headers={"Authorization": f"Bearer {token}".encode()}, timeout=5
        )

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')

    def test_bad_signature(self, server, token):
        header, payload, signature = token.split(".")
        tampered = f"{header}.{payload}.{signature[:-4]}AAAA"

        response = get(profile_url(server, "player_1"), tampered)

        assert response.status_code == 401
        assert "signature" in response.headers["WWW-Authenticate"]

    def test_token_of_another_sandbox(self, server, token):
        with SandboxServer(SandboxState()) as other:
            foreign = fetch_token(other)

        assert get(profile_url(server, "player_1"), foreign).status_code == 401

    def test_unknown_after_reset(self, server, state, token):
        assert get(profile_url(server, "player_1"), token).status_code == 200
        state.reset()

        response = get(profile_url(server, "player_1"), token)

        assert response.status_code == 401
        assert "unknown" in problem_of(response)["detail"]

    def test_revoked(self, server, state, token):
        assert get(profile_url(server, "player_1"), token).status_code == 200

        assert state.revoke_tokens() == 1
        response = get(profile_url(server, "player_1"), token)

        assert response.status_code == 401
        assert "revoked" in response.headers["WWW-Authenticate"]
        assert state.stats()["revocations"] == 1

    def test_revoking_one_client_spares_the_others(self, server, state, token):
        state.add_client("other", "other-secret")
        other = fetch_token(server, client_id="other", client_secret="other-secret")

        assert state.revoke_tokens("other") == 1

        assert get(profile_url(server, "player_1"), token).status_code == 200
        assert get(profile_url(server, "player_1"), other).status_code == 401


def test_bookmaker_not_held_is_forbidden(server, state, token):
    state.add_client("elsewhere", "elsewhere-secret", bookmakers={(7, 8)})
    elsewhere = fetch_token(server, client_id="elsewhere", client_secret="elsewhere-secret")

    forbidden = get(profile_url(server, "player_1", bookmaker=123, sub_bookmaker=999), token)

    assert forbidden.status_code == 403
    assert "999" in problem_of(forbidden)["detail"]
    assert get(profile_url(server, "player_1", bookmaker=7, sub_bookmaker=8), elsewhere).status_code == 200
    assert get(profile_url(server, "player_1"), elsewhere).status_code == 403


@pytest.mark.parametrize(
    ("bookmaker", "sub_bookmaker", "parameter"),
    [
        ("abc", 456, "bookmakerId"),
        ("-1", 456, "bookmakerId"),
        ("2147483648", 456, "bookmakerId"),
        ("1.5", 456, "bookmakerId"),
        (123, "x", "subBookmakerId"),
        (123, "99999999999", "subBookmakerId"),
        (123, "9" * 5000, "subBookmakerId"),
    ],
)
def test_invalid_ids_are_400(server, token, bookmaker, sub_bookmaker, parameter):
    response = get(profile_url(server, "player_1", bookmaker=bookmaker, sub_bookmaker=sub_bookmaker), token)

    assert response.status_code == 400
    body = problem_of(response)
    assert body["title"] == "One or more validation errors occurred."
    assert parameter in body["errors"]


def test_largest_int32_is_a_valid_id(server, state, token):
    state.add_client("big", "big-secret", bookmakers={(2147483647, 0)})
    big = fetch_token(server, client_id="big", client_secret="big-secret")

    assert get(profile_url(server, "player_1", bookmaker=2147483647, sub_bookmaker=0), big).status_code == 200


def test_account_id_length(server, token):
    assert get(profile_url(server, "x" * 64), token).status_code == 404
    too_long = get(profile_url(server, "x" * 65), token)

    assert too_long.status_code == 400
    assert "accountId" in problem_of(too_long)["errors"]


def test_validation_comes_after_authentication(server, state):
    assert get(profile_url(server, "x" * 65)).status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/ci/api/rg/v1/operator/PlayerRiskProfile/bookmakers/123/sub-bookmakers/456/accountid/player_1",
        "/ci/api/rg/v1/Operator/PlayerRiskProfile/bookmakers/123/sub-bookmakers/456/accountid/player_1/",
        "/ci/api/rg/v1/Operator/PlayerRiskProfile/bookmakers/123/sub-bookmakers/456/accountid/",
        "/ci/api/rg/v1/Operator/PlayerRiskProfile/bookmakers/123/sub-bookmakers/456",
        "/ci/api/rg/v1/Operator/RiskProfiles/bookmakers/123/sub-bookmakers/456/",
        "/rg/api/v1/Operator/PlayerRiskProfile/bookmakers/123/sub-bookmakers/456/accountid/player_1",
        "/ci/api/rg/v2/Operator/PlayerRiskProfile/bookmakers/123/sub-bookmakers/456/accountid/player_1",
        "/ci/api/rg//v1/Operator/PlayerRiskProfile/bookmakers/123/sub-bookmakers/456/accountid/player_1",
        "/",
    ],
)
def test_paths_that_match_no_route_are_404(server, state, token, path):
    response = get(f"{server.url}{path}", token)

    assert response.status_code == 404
    problem_of(response)
    assert state.requests[-1].route is None
    assert state.requests[-1].path == path


def test_other_methods_are_405(server, token):
    response = requests.post(profile_url(server, "player_1"), headers=bearer(token), timeout=5)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


@pytest.mark.parametrize(
    "account",
    ["a/b", "a?b=c", "a#b", "100%", "%2F", "..", "../player_1", ".", "a b", "é", "player_1/../player_2"],
)
def test_account_ids_are_decoded_after_splitting_the_path(server, state, token, account):
    response = get(profile_url(server, account), token)

    assert response.status_code == 404
    assert problem_of(response)["title"] == "Player not found"
    recorded = state.requests[-1]
    assert recorded.route == "profile"
    assert recorded.account_id == account
    assert recorded.status == 404


def test_a_raw_slash_is_a_separator(server, state, token):
    response = get(profile_url(server, "a/b", encoded=True), token)

    assert response.status_code == 404
    assert state.requests[-1].route is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(account=st.text(min_size=1, max_size=64).filter(lambda s: "\x00" not in s))
def test_any_encoded_account_id_arrives_intact(server, account):
    state = fresh_state(server)
    token = fetch_token(server)

    response = get(profile_url(server, account), token)

    assert response.status_code in (200, 404)
    assert state.requests[-1].account_id == account
    assert state.requests[-1].route == "profile"


def test_requests_are_recorded(server, state, token):
    get(profile_url(server, "player_3"), token)

    recorded = state.requests[-1]
    assert recorded.method == "GET"
    assert recorded.route == "profile"
    assert recorded.environment == "integration"
    assert (recorded.bookmaker_id, recorded.sub_bookmaker_id, recorded.account_id) == ("123", "456", "player_3")
    assert recorded.client_id == CLIENT_ID
    assert recorded.status == 200
    assert state.stats()["api_requests"]["by_route"]["profile"] == {"200": 1}


def test_connections_are_kept_alive(server, token):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    path = profile_url(server, "player_1").removeprefix(server.url)
    try:
        connection.request("GET", path, headers=bearer(token))
        first = connection.getresponse()
        first.read()
        sock = connection.sock
        connection.request("GET", path, headers=bearer(token))
        second = connection.getresponse()
        second.read()

        assert (first.status, second.status) == (200, 200)
        assert not first.will_close and not second.will_close
        assert sock is not None and connection.sock is sock
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("score", "category"),
    [(1, 0), (49, 0), (50, 1), (67, 1), (68, 2), (94, 2), (95, 3), (98, 3), (99, 4), (100, 4)],
)
def test_risk_category_bands(score, category):
    assert profiles.risk_category(score) == category


def test_every_band_in_any_two_hundred_players():
    for start in (1, 57, 801, 4801):
        categories = {
            profiles.build_profile(1, 123, 456, index, 0, date(2025, 7, 1))["riskCategory"]
            for index in range(start, start + 200)
        }
        assert categories == {0, 1, 2, 3, 4}


def test_high_bands_are_rare():
    categories = [
        profiles.build_profile(3, 1, 2, index, 0, date(2025, 7, 1))["riskCategory"] for index in range(1, 1001)
    ]

    assert categories.count(0) == 600
    assert categories.count(3) == 30
    assert categories.count(4) == 20
