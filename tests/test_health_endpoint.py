"""The health endpoint for monitors: status codes, access control and the JSON body in every state."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from bettorsense import beat
from bettorsense.conf import get_config
from bettorsense.models import SyncRun
from bettorsense.redaction import fingerprint
from bettorsense.sync import run_sync
from tests.support import health_states

pytestmark = pytest.mark.django_db

HEALTH_KEY = "monitor-key-for-tests-0123456789"
URL = "/bettorsense/health/"


@pytest.fixture
def monitored(configure):
    """Like ``configure``, with the monitor's key set whatever the overrides."""

    def apply(**overrides):
        return configure(**{"HEALTH_TOKEN": HEALTH_KEY, **overrides})

    apply()
    return apply


def bearer(key: str = HEALTH_KEY) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_url_is_mounted_under_bettorsense():
    assert reverse("bettorsense:health") == URL


@pytest.mark.parametrize("state", sorted(health_states.STATES))
def test_full_body_in_every_state(client, monitored, sandbox, settings, state):
    expected = health_states.STATES[state](monitored, sandbox, settings)
    response = client.get(URL, **bearer())
    body = response.json()
    assert body["status"] == expected, body["reasons"]
    assert response.status_code == (503 if expected == "down" else 200)
    assert response["Cache-Control"].startswith("max-age=0")
    if state == "settings-invalid":
        return  # the key lives in the settings that are invalid: nobody gets more than the word
    assert set(body) >= {"status", "reasons", "token", "beat", "breaker", "last_api_call", "cache", "checks"}
    assert (expected == "ok") == (body["reasons"] == [])
    for reason in body["reasons"]:
        assert reason["status"] in {"degraded", "down"} and reason["code"] and reason["message"]
    assert {"expires_in", "fingerprint", "present", "usable"} <= set(body["token"])
    assert {"age", "last_run", "stale"} <= set(body["beat"])


def test_healthy_body(client, monitored, sandbox, settings):
    health_states.healthy(monitored, sandbox, settings)
    body = client.get(URL, **bearer()).json()
    assert body["status"] == "ok"
    assert body["token"]["present"] and body["token"]["usable"]
    assert body["token"]["fingerprint"].startswith("sha256:")
    assert 500 < body["token"]["expires_in"] <= 600
    assert body["token"]["last_renewal"]["outcome"] == "ok"
    assert body["token"]["last_renewal"]["origin"] == "beat"
    assert body["token"]["renewals"] == {"last_hour": 1, "last_day": 1}
    assert body["beat"]["stale"] is False and body["beat"]["age"] is not None
    assert body["breaker"] == "closed"
    assert body["last_api_call"]["outcome"] == "ok" and body["last_api_call"]["status"] == 200
    assert body["cache"]["shared"] and body["cache"]["reachable"]


def test_down_body_names_the_failing_token_endpoint(client, monitored, sandbox, settings):
    health_states.token_endpoint_down(monitored, sandbox, settings)
    response = client.get(URL, **bearer())
    assert response.status_code == 503
    body = response.json()
    assert [r["code"] for r in body["reasons"] if r["status"] == "down"] == ["token-unavailable"]
    # In words: what the token endpoint did, not the error's class name (that is in "outcome").
    assert "The token endpoint failed. (HTTP 503)" in body["reasons"][0]["message"]
    assert "TokenServerError" not in body["reasons"][0]["message"]
    assert body["token"]["present"] is False
    assert body["token"]["last_error"]["outcome"] == "TokenServerError"
    assert body["token"]["backoff_until"] is not None


# --- access control -----------------------------------------------------------------------------


def test_anonymous_gets_the_status_word_only(client, monitored, sandbox, settings):
    health_states.healthy(monitored, sandbox, settings)
    response = client.get(URL)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "Authorization" in response["Vary"] and "Cookie" in response["Vary"]


def test_anonymous_still_sees_down_as_503(client, monitored, sandbox, settings):
    health_states.token_endpoint_down(monitored, sandbox, settings)
    response = client.get(URL)
    assert response.status_code == 503
    assert response.json() == {"status": "down"}


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-key",
        f"Bearer {HEALTH_KEY}x",
        f"Basic {HEALTH_KEY}",
        HEALTH_KEY,
        "Bearer ",
        "",
    ],
)
def test_a_wrong_key_gets_the_status_word_only(client, monitored, sandbox, settings, header):
    health_states.healthy(monitored, sandbox, settings)
    assert client.get(URL, HTTP_AUTHORIZATION=header).json() == {"status": "ok"}


def test_no_key_configured_means_no_bearer_access(client, configure, sandbox, settings):
    configure(HEALTH_TOKEN="")
    health_states.healthy(configure, sandbox, settings)
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer ").json() == {"status": "ok"}


def test_the_key_is_compared_in_constant_time(client, monitored, sandbox, monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    client.get(URL, **bearer())
    assert calls == [(HEALTH_KEY.encode(), HEALTH_KEY.encode())]


def test_staff_session_with_the_view_permission_gets_the_full_body(
    client, monitored, sandbox, settings, django_user_model
):
    health_states.healthy(monitored, sandbox, settings)
    staff = django_user_model.objects.create_user("watcher", password="pw-watcher-1", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_health"))
    client.force_login(staff)
    body = client.get(URL).json()
    assert body["status"] == "ok" and "reasons" in body


def test_superuser_gets_the_full_body(admin_client, monitored, sandbox, settings):
    health_states.healthy(monitored, sandbox, settings)
    assert "token" in admin_client.get(URL).json()


def test_non_staff_and_staff_without_permission_get_the_word_only(
    client, monitored, sandbox, settings, django_user_model
):
    health_states.healthy(monitored, sandbox, settings)
    player = django_user_model.objects.create_user("player", password="pw-player-1")
    client.force_login(player)
    assert client.get(URL).json() == {"status": "ok"}
    staff = django_user_model.objects.create_user("clerk", password="pw-clerk-1", is_staff=True)
    client.force_login(staff)
    assert client.get(URL).json() == {"status": "ok"}


def test_only_get(client, monitored):
    assert client.post(URL, **bearer()).status_code == 405


# --- what an operator needs in the body -----------------------------------------------------------


def test_the_client_id_is_shown_in_full_and_the_secret_by_fingerprint(client, monitored, sandbox, settings):
    health_states.healthy(monitored, sandbox, settings)
    body = client.get(URL, **bearer()).json()
    config = get_config()
    assert body["credentials"] == {"client_id": config.client_id, "client_secret": fingerprint(config.client_secret)}
    assert config.client_secret not in json.dumps(body)


def test_a_failed_sync_is_degraded_with_its_error(client, monitored, sandbox, settings):
    health_states.sync_failed(monitored, sandbox, settings)
    response = client.get(URL, **bearer())
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    failed = [r for r in body["reasons"] if r["code"] == "sync-failed"]
    assert len(failed) == 1 and "HTTP 403" in failed[0]["message"]
    assert body["sync"]["last_run_failed"] is True
    assert body["sync"]["last_success"] is None
    assert body["sync"]["scheduled"] is True  # the demo's beat schedule has the daily sync
    assert "HTTP 403" in body["sync"]["error"]


def test_a_sync_that_succeeded_since_clears_the_failure(client, monitored, sandbox, settings):
    health_states.sync_failed(monitored, sandbox, settings)
    run_sync(full=True)
    body = client.get(URL, **bearer()).json()
    assert body["status"] == "ok"
    assert body["sync"]["last_run_failed"] is False
    assert body["sync"]["age"] is not None and body["sync"]["age"] >= 0


def test_a_sync_stale_for_over_a_day_is_degraded(client, monitored, sandbox, settings):
    health_states.beat_runs()
    run = run_sync(full=True)
    SyncRun.objects.filter(pk=run.pk).update(
        started_at=run.started_at - timedelta(days=2), finished_at=run.finished_at - timedelta(days=2)
    )
    body = client.get(URL, **bearer()).json()
    assert [r["code"] for r in body["reasons"]] == ["sync-stale"]
    assert body["sync"]["age"] > 86400
    settings.CELERY_BEAT_SCHEDULE = {
        name: entry for name, entry in settings.CELERY_BEAT_SCHEDULE.items() if entry["task"] != beat.SYNC_TASK
    }
    body = client.get(URL, **bearer()).json()  # no sync scheduled: an old success is no problem
    assert "sync-stale" not in [r["code"] for r in body["reasons"]]
    assert body["sync"]["scheduled"] is False


def test_the_last_error_has_its_age_and_is_resolved_by_a_later_renewal(client, monitored, sandbox, settings):
    health_states.error_resolved(monitored, sandbox, settings)
    body = client.get(URL, **bearer()).json()
    assert body["status"] == "ok"
    error = body["token"]["last_error"]
    assert error["outcome"] == "TokenRateLimited"
    assert error["resolved"] is True
    assert error["age"] >= 0


def test_the_beat_interval_is_read_from_the_schedule(client, monitored, sandbox, settings):
    settings.CELERY_BEAT_SCHEDULE = {
        **settings.CELERY_BEAT_SCHEDULE,
        "bettorsense-refresh-token": {"task": beat.REFRESH_TASK, "schedule": timedelta(seconds=60)},
    }
    body = client.get(URL, **bearer()).json()
    assert body["beat"]["every"] == 60.0
    assert body["beat"]["stale_after"] == 180.0


def test_invalid_settings_give_no_false_cache_reason(admin_client, monitored, sandbox, settings):
    monitored(ENVIRONMENT="prod")
    response = admin_client.get(URL)  # the key is a setting too: a staff session reads the body
    assert response.status_code == 503
    codes = [r["code"] for r in response.json()["reasons"]]
    assert codes == ["config-invalid"]
    assert response.json()["cache"] is None
