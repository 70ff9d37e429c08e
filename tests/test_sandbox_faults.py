"""Injected faults, on the token endpoint and on the API, over real HTTP."""

from __future__ import annotations

import threading

import pytest
import requests

from bettorsense.sandbox import Fault, SandboxServer, SandboxState
from tests.support.sandbox import batch_url, fetch_token, fresh_state, get, profile_url, request_token, token_form


@pytest.fixture
def state(server):
    return fresh_state(server, players=300, page_size=50)


@pytest.fixture
def token(server, state):
    return fetch_token(server)


class TestTokenFaults:
    @pytest.mark.parametrize(("status", "error"), [(500, "server_error"), (503, "temporarily_unavailable")])
    def test_status(self, server, state, status, error):
        state.add_fault(Fault(target="token", kind="status", status=status, times=1))

        failed = request_token(server)

        assert failed.status_code == status
        assert failed.json()["error"] == error
        assert request_token(server).status_code == 200
        assert state.stats()["token_requests"]["demo-client"]["rejected"] == {"fault_status": 1}

    def test_retry_after(self, server, state):
        state.add_fault(Fault(target="token", kind="retry_after", retry_after=7, times=1))

        response = request_token(server)

        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.json()["error"] == "too_many_requests"

    def test_slow_then_normal(self, server, state):
        fault = state.add_fault(Fault(target="token", kind="slow", delay=0.2, times=1))

        response = request_token(server)

        assert response.status_code == 200
        assert fault.fired == 1
        assert state.faults == []

    def test_slow_answer_times_a_client_out(self, server, state):
        state.add_fault(Fault(target="token", kind="slow", delay=2, times=1))

        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(server.token_url, data={"grant_type": "client_credentials"}, timeout=0.2)

    def test_hang_never_answers(self, server, state):
        state.add_fault(Fault(target="token", kind="hang", times=1))

        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(server.token_url, data=token_form(), timeout=0.3)
        assert request_token(server).status_code == 200

    def test_non_json(self, server, state):
        state.add_fault(Fault(target="token", kind="non_json", times=1))

        response = request_token(server)

        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        with pytest.raises(ValueError):
            response.json()

    @pytest.mark.parametrize(
        ("fault", "check"),
        [
            (Fault(target="token", kind="missing_field"), lambda body: "access_token" not in body),
            (Fault(target="token", kind="missing_field", field="expires_in"), lambda body: "expires_in" not in body),
            (Fault(target="token", kind="bad_type"), lambda body: body["expires_in"] == "abc"),
            (
                Fault(target="token", kind="bad_type", field="expires_in", value=-5),
                lambda body: body["expires_in"] == -5,
            ),
            (Fault(target="token", kind="bad_type", field="token_type"), lambda body: body["token_type"] == 5),
            (Fault(target="token", kind="bad_type", field="access_token"), lambda body: body["access_token"] == 12345),
        ],
    )
    def test_ill_shaped_bodies(self, server, state, fault, check):
        state.add_fault(fault)

        response = request_token(server)

        assert response.status_code == 200
        assert check(response.json())

    def test_body_faults_wait_for_a_success(self, server, state):
        state.add_fault(Fault(target="token", kind="missing_field", times=1))

        assert request_token(server, client_secret="wrong").status_code == 401
        assert "access_token" not in request_token(server).json()
        assert "access_token" in request_token(server).json()

    def test_times_counts_down(self, server, state):
        fault = state.add_fault(Fault(target="token", kind="status", status=500, times=3))

        statuses = [request_token(server).status_code for _ in range(4)]

        assert statuses == [500, 500, 500, 200]
        assert fault.times == 0 and fault.fired == 3
        assert state.stats()["faults"] == []


class TestApiFaults:
    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_status(self, server, state, token, status):
        state.add_fault(Fault(target="api", kind="status", status=status, times=1))

        response = get(profile_url(server, "player_1"), token)

        assert response.status_code == status
        assert response.json()["status"] == status
        assert get(profile_url(server, "player_1"), token).status_code == 200
        assert state.stats()["api_requests"]["by_route"]["profile"] == {str(status): 1, "200": 1}

    def test_fault_comes_before_authentication(self, server, state):
        state.add_fault(Fault(target="profile", kind="status", status=503, times=1))

        assert get(profile_url(server, "player_1")).status_code == 503

    def test_retry_after(self, server, state, token):
        state.add_fault(Fault(target="api", kind="retry_after", retry_after=3, times=1))

        response = get(batch_url(server), token)

        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"

    def test_slow(self, server, state, token):
        state.add_fault(Fault(target="profile", kind="slow", delay=2, times=1))

        with pytest.raises(requests.exceptions.ReadTimeout):
            get(profile_url(server, "player_1"), token, timeout=0.2)
        assert get(profile_url(server, "player_1"), token).status_code == 200

    def test_slow_also_delays_errors(self, server, state, token):
        state.add_fault(Fault(target="profile", kind="slow", delay=2, times=1))

        with pytest.raises(requests.exceptions.ReadTimeout):
            get(profile_url(server, "nobody"), token, timeout=0.2)

    def test_hang_is_recorded_without_a_status(self, server, state, token):
        state.add_fault(Fault(target="api", kind="hang", times=1))

        with pytest.raises(requests.exceptions.ReadTimeout):
            get(profile_url(server, "player_1"), token, timeout=0.3)

        assert state.requests[-1].status is None
        assert state.stats()["api_requests"]["by_status"] == {"no-answer": 1}

    def test_non_json(self, server, state, token):
        state.add_fault(Fault(target="profile", kind="non_json", times=1))

        response = get(profile_url(server, "player_1"), token)

        assert response.status_code == 200
        assert response.text.startswith("<!DOCTYPE html>")

    def test_missing_player_id(self, server, state, token):
        state.add_fault(Fault(target="profile", kind="missing_field", times=1))

        body = get(profile_url(server, "player_1"), token).json()

        assert "playerId" not in body and "riskScore" in body

    def test_risk_score_as_a_string(self, server, state, token):
        normal = get(profile_url(server, "player_1"), token).json()
        state.add_fault(Fault(target="profile", kind="bad_type", times=1))

        body = get(profile_url(server, "player_1"), token).json()

        assert body["riskScore"] == str(normal["riskScore"])

    def test_body_faults_skip_errors(self, server, state, token):
        state.add_fault(Fault(target="profile", kind="missing_field", times=1))

        assert get(profile_url(server, "nobody"), token).json()["title"] == "Player not found"
        assert "playerId" not in get(profile_url(server, "player_1"), token).json()

    def test_target_profile_spares_the_batch(self, server, state, token):
        state.add_fault(Fault(target="profile", kind="status", status=500))

        assert get(batch_url(server), token).status_code == 200
        assert get(profile_url(server, "player_1"), token).status_code == 500

    def test_only_the_named_page(self, server, state, token):
        state.add_fault(Fault(target="batch", kind="status", status=502, page=3))

        statuses = [get(batch_url(server), token, params={"page": str(p)}).status_code for p in (1, 2, 3, 4, 3)]

        assert statuses == [200, 200, 502, 200, 502]
        assert get(profile_url(server, "player_1"), token).status_code == 200

    def test_default_page_is_page_one(self, server, state, token):
        state.add_fault(Fault(target="batch", kind="status", status=500, page=1, times=1))

        assert get(batch_url(server), token).status_code == 500

    def test_batch_items_missing_a_field(self, server, state, token):
        state.add_fault(Fault(target="batch", kind="missing_field", page=2))

        first = get(batch_url(server), token, params={"page": "1"}).json()
        second = get(batch_url(server), token, params={"page": "2"}).json()

        assert all("playerId" in item for item in first["items"])
        assert second["items"] and all("playerId" not in item for item in second["items"])

    def test_batch_envelope_field(self, server, state, token):
        state.add_fault(Fault(target="batch", kind="bad_type", field="totalPages", value="many"))

        body = get(batch_url(server), token).json()

        assert body["totalPages"] == "many"
        assert len(body["items"]) == 50

    def test_first_matching_fault_wins_and_faults_can_be_cleared(self, server, state, token):
        state.add_fault(Fault(target="api", kind="status", status=500))
        state.add_fault(Fault(target="api", kind="status", status=503))

        assert get(profile_url(server, "player_1"), token).status_code == 500
        assert state.clear_faults() == 2
        assert get(profile_url(server, "player_1"), token).status_code == 200


def test_stop_releases_hung_requests():
    state = SandboxState()
    server = SandboxServer(state).start()
    state.add_fault(Fault(target="token", kind="hang"))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.post(server.token_url, data={}, timeout=10)
        except requests.exceptions.RequestException as err:
            errors.append(err)

    caller = threading.Thread(target=call)
    caller.start()
    for _ in range(500):
        if state.stats()["faults"][0]["fired"]:
            break
        threading.Event().wait(0.01)
    server.stop()
    caller.join(timeout=5)

    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], requests.exceptions.ConnectionError)


@pytest.mark.parametrize(
    "fields",
    [
        {"target": "db"},
        {"kind": "explode"},
        {"status": 99},
        {"times": 0},
        {"page": 0},
        {"delay": -1},
        {"retry_after": 1.5},
    ],
)
def test_invalid_faults_are_refused(fields):
    with pytest.raises(ValueError):
        Fault(**fields)
