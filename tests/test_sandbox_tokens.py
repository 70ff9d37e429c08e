"""The sandbox's Auth0 stand-in: POST /oauth/token, over real HTTP."""

from __future__ import annotations

import base64
import logging

import pytest
import requests

from tests.support.sandbox import (
    CLIENT_ID,
    CLIENT_SECRET,
    NONPROD,
    PROD,
    FakeClock,
    fetch_token,
    fresh_state,
    get,
    jwt_claims,
    profile_url,
    request_token,
    token_form,
)


@pytest.fixture
def state(server):
    return fresh_state(server)


def test_issues_a_bearer_token_shaped_like_auth0(server, state):
    response = request_token(server)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    claims = jwt_claims(body["access_token"])
    assert claims["iss"] == f"{server.url}/"
    assert claims["sub"] == f"{CLIENT_ID}@clients"
    assert claims["aud"] == NONPROD
    assert claims["azp"] == CLIENT_ID
    assert claims["gty"] == "client-credentials"
    assert claims["exp"] - claims["iat"] == 600
    assert len(claims["jti"]) == 32


def test_each_token_is_new_and_counted(server, state):
    first, second = fetch_token(server), fetch_token(server, PROD)

    assert first != second
    assert jwt_claims(second)["aud"] == PROD
    stats = state.stats()
    assert stats["token_requests"][CLIENT_ID] == {"total": 2, "issued": 2, "rejected": {}}
    assert stats["tokens"] == {"issued": 2, "active": 2, "revoked": 0}


def test_accepts_a_json_body(server, state):
    response = requests.post(server.token_url, json=token_form(), timeout=5)

    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


def test_accepts_http_basic_client_authentication(server, state):
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    data = {"grant_type": "client_credentials", "audience": NONPROD}

    response = requests.post(server.token_url, data=data, headers={"Authorization": f"Basic {credentials}"}, timeout=5)

    assert response.status_code == 200
    assert jwt_claims(response.json()["access_token"])["azp"] == CLIENT_ID


@pytest.mark.parametrize(
    ("overrides", "status", "error", "description", "reason"),
    [
        ({"grant_type": None}, 400, "invalid_request", "Missing required parameter: grant_type", "missing_grant_type"),
        (
            {"grant_type": "password"},
            403,
            "unauthorized_client",
            "Grant type 'password' not allowed for the client.",
            "unauthorized_client",
        ),
        (
            {"grant_type": "magic"},
            403,
            "unsupported_grant_type",
            "Unsupported grant type: magic",
            "unsupported_grant_type",
        ),
        ({"client_id": None}, 401, "invalid_client", "Missing client_id", "missing_client_id"),
        ({"client_secret": "wrong-secret-42"}, 401, "access_denied", "Unauthorized", "bad_credentials"),
        ({"client_secret": None}, 401, "access_denied", "Unauthorized", "bad_credentials"),
        (
            {"audience": None},
            403,
            "access_denied",
            "Non-global clients are not allowed access to APIv1",
            "missing_audience",
        ),
        (
            {"audience": "https://other.example"},
            403,
            "access_denied",
            "Service not found: https://other.example",
            "unknown_audience",
        ),
    ],
)
def test_rejects_like_auth0(server, state, overrides, status, error, description, reason):
    response = requests.post(server.token_url, data=token_form(**overrides), timeout=5)

    assert response.status_code == status
    assert response.json() == {"error": error, "error_description": description}
    assert "wrong-secret-42" not in response.text
    counts = state.stats()["token_requests"]
    assert sum(entry["rejected"].get(reason, 0) for entry in counts.values()) == 1
    assert state.stats()["tokens"]["issued"] == 0


def test_unknown_client_is_unauthorized_and_counted_apart(server, state):
    response = request_token(server, client_id="nobody", client_secret="guess")

    assert response.status_code == 401
    assert response.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    assert state.stats()["token_requests"]["<unknown>"]["rejected"] == {"bad_credentials": 1}


def test_audience_not_granted_to_the_client(server, state):
    state.add_client("prod-only", "prod-only-secret", audiences=[PROD])

    response = request_token(server, NONPROD, client_id="prod-only", client_secret="prod-only-secret")

    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "access_denied"
    assert body["error_description"].startswith(f'Client is not authorized to access "{NONPROD}".')
    assert request_token(server, PROD, client_id="prod-only", client_secret="prod-only-secret").status_code == 200


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", b"grant_type=client_credentials"), ("application/xml", b"<x/>"), ("", b"")],
)
def test_rejects_other_content_types(server, state, content_type, body):
    response = requests.post(server.token_url, data=body, headers={"Content-Type": content_type}, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "content type" in response.json()["error_description"]


def test_rejects_malformed_json(server, state):
    response = requests.post(
        server.token_url, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=5
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_get_is_not_allowed(server, state):
    response = requests.get(server.token_url, timeout=5)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_never_logs_the_secret_or_the_token(server, state, caplog):
    caplog.set_level(logging.DEBUG, logger="bettorsense.sandbox")

    token = fetch_token(server)
    request_token(server, client_secret="wrong-secret-42")

    assert CLIENT_SECRET not in caplog.text
    assert "wrong-secret-42" not in caplog.text
    assert token not in caplog.text
    assert "issued token" in caplog.text


@pytest.mark.parametrize(("lifetime", "expires_in"), [(2.4, 2), (0.2, 1), (30, 30)])
def test_lifetime_is_announced_as_whole_seconds(server, lifetime, expires_in):
    fresh_state(server, token_lifetime=lifetime)

    body = request_token(server).json()

    assert body["expires_in"] == expires_in
    claims = jwt_claims(body["access_token"])
    assert claims["exp"] - claims["iat"] == expires_in


def test_token_expires_after_its_lifetime(server):
    clock = FakeClock()
    fresh_state(server, token_lifetime=5, clock=clock)
    token = fetch_token(server)

    clock.advance(4.9)
    assert get(profile_url(server, "player_1"), token).status_code == 200
    clock.advance(0.1)
    expired = get(profile_url(server, "player_1"), token)

    assert expired.status_code == 401
    assert "expired" in expired.headers["WWW-Authenticate"]
    assert get(profile_url(server, "player_1"), fetch_token(server)).status_code == 200


class TestReuseRule:
    @pytest.fixture
    def clock(self):
        return FakeClock()

    @pytest.fixture
    def state(self, server, clock):
        return fresh_state(server, token_lifetime=600, enforce_reuse=True, clock=clock)

    def test_second_request_while_the_token_is_fresh_is_refused(self, server, state, clock):
        first = fetch_token(server)
        clock.advance(100)

        response = request_token(server)

        assert response.status_code == 429
        body = response.json()
        assert body["error"] == "too_many_requests"
        assert "500 s left" in body["error_description"]
        assert "Reuse it" in body["error_description"]
        assert first not in response.text
        assert int(response.headers["Retry-After"]) == 500 - 60
        stats = state.stats()
        assert stats["reuse_violations"] == 1
        assert stats["token_requests"][CLIENT_ID] == {"total": 2, "issued": 1, "rejected": {"reuse_violation": 1}}

    def test_a_new_token_is_allowed_inside_the_threshold(self, server, state, clock):
        fetch_token(server)
        clock.advance(600 - 60)

        assert request_token(server).status_code == 200

    def test_threshold_defaults_to_a_fifth_of_short_lifetimes_and_is_configurable(self, server, state, clock):
        state.set_config(token_lifetime=10)
        fetch_token(server)
        clock.advance(7.5)
        assert request_token(server).status_code == 429
        clock.advance(0.5)
        assert request_token(server).status_code == 200

        state.set_config(reuse_threshold=9)
        clock.advance(1)
        assert request_token(server).status_code == 200

    def test_is_per_audience_and_per_client(self, server, state, clock):
        state.add_client("other", "other-secret")
        fetch_token(server, NONPROD)

        assert request_token(server, PROD).status_code == 200
        assert request_token(server, NONPROD, client_id="other", client_secret="other-secret").status_code == 200

    def test_a_revoked_token_does_not_count_as_current(self, server, state, clock):
        fetch_token(server)
        state.revoke_tokens(CLIENT_ID)

        assert request_token(server).status_code == 200

    def test_off_by_default(self, server):
        fresh_state(server)
        fetch_token(server)

        assert request_token(server).status_code == 200
