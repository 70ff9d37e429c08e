"""The health page in the admin, through the Django test client."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from bettorsense.sandbox import Fault
from tests.support import health_states

pytestmark = pytest.mark.django_db

PAGE = "/admin/bettorsense/health/"
CHECK = "/admin/bettorsense/health/check/"


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="bettorsense", codename__in=("view_health", "run_probe"))
    )
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def status_of(html: str) -> str:
    match = re.search(r'id="bs-status"[^>]*data-status="([a-z]+)"', html)
    assert match, "no status badge"
    return match.group(1)


# --- who may see it -----------------------------------------------------------------------------


def test_anonymous_goes_to_the_login_page(client, configure):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=" + PAGE)


def test_non_staff_user_is_refused(client, configure, django_user_model):
    client.force_login(django_user_model.objects.create_user("player", password="pw-player-1"))
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.post(CHECK).status_code == 302


def test_staff_without_the_view_permission_is_refused(client, configure, django_user_model):
    client.force_login(django_user_model.objects.create_user("clerk", password="pw-clerk-1", is_staff=True))
    assert client.get(PAGE).status_code == 403
    assert client.post(CHECK).status_code == 403


def test_the_admin_index_links_to_the_page_under_bettor_sense(staff_client, configure):
    html = staff_client.get("/admin/").content.decode()
    assert "Bettor Sense" in html
    assert f'href="{PAGE}"' in html


def test_view_only_no_add_change_or_delete(staff_client, admin_client, configure):
    codenames = Permission.objects.filter(content_type__model="health").values_list("codename", flat=True)
    assert sorted(codenames) == ["run_probe", "view_health"]  # view, and "Check now" (no add/change/delete)
    for client in (staff_client, admin_client):
        assert client.get(PAGE + "add/").status_code in (302, 403, 404)
        assert client.get(PAGE + "1/change/").status_code in (302, 403, 404)
        assert client.get(PAGE + "1/delete/").status_code in (302, 403, 404)
    html = admin_client.get("/admin/").content.decode()
    assert f'href="{PAGE}add/"' not in html


# --- what it shows ------------------------------------------------------------------------------


def test_staff_see_each_section(staff_client, configure, sandbox, settings):
    health_states.healthy(configure, sandbox, settings)
    response = staff_client.get(PAGE)
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    html = response.content.decode()
    assert status_of(html) == "ok"
    assert '<div class="breadcrumbs">' in html and "Bettor Sense" in html
    for section in ("bs-configuration", "bs-token", "bs-beat", "bs-service", "bs-probe"):
        assert f'id="{section}"' in html
    # Configuration: environment, URLs, audience, the client id in full, bookmakers, cache.
    assert sandbox.token_url in html and sandbox.api_url("integration") in html
    assert "mts-insight-tech-non-prod" in html
    assert '<dd id="bs-client-id"><code>demo-client</code></dd>' in html
    assert re.search(r'id="bs-client-secret">set, fingerprint <code[^>]*>sha256:[0-9a-f]{12}</code>', html)
    assert "demo-client-secret" not in html
    assert ">123<" in html and ">456<" in html
    assert "DatabaseCache" in html or "RedisCache" in html
    # Token: fingerprint, issue time, live countdown, last renewal, counters.
    assert re.search(r"present, <code[^>]*>sha256:[0-9a-f]{12}</code>", html)
    assert re.search(r'id="bs-expires-in" data-bs-countdown="\d+\.\d"', html)
    assert "by beat:" in html
    assert "1 in the last hour, 1 in 24 h" in html
    # Beat and service.
    assert 'id="bs-beat-stale"' not in html
    assert ">closed<" in html
    assert "(HTTP 200)" in html
    assert "no issues" in html
    assert 'value="Check now"' in html and "csrfmiddlewaretoken" in html
    assert "<script src=" not in html.split('id="content-main"')[1]  # inline only, no external assets


def test_stale_beat_is_red_and_says_what_to_start(staff_client, configure, sandbox, settings):
    health_states.beat_stale(configure, sandbox, settings)
    html = staff_client.get(PAGE).content.decode()
    assert status_of(html) == "degraded"
    assert 'class="bs-bad" id="bs-beat-stale"' in html
    assert "celery -A &lt;your project&gt; beat" in html


def test_cache_not_shared_is_explained(staff_client, configure, sandbox, settings):
    health_states.cache_not_shared(configure, sandbox, settings)
    html = staff_client.get(PAGE).content.decode()
    assert status_of(html) == "degraded"
    assert 'data-code="cache-not-shared"' in html
    assert "bettorsense.W001" in html  # the system check, with its hint


def test_broken_token_endpoint_is_down(staff_client, configure, sandbox, settings):
    health_states.token_endpoint_down(configure, sandbox, settings)
    html = staff_client.get(PAGE).content.decode()
    assert status_of(html) == "down"
    assert 'data-code="token-unavailable"' in html
    assert "The token endpoint failed. (HTTP 503)" in html
    assert ">absent<" in html


@pytest.mark.parametrize("state", sorted(health_states.STATES))
def test_every_state_renders_with_its_badge(staff_client, configure, sandbox, settings, state):
    expected = health_states.STATES[state](configure, sandbox, settings)
    response = staff_client.get(PAGE)
    assert response.status_code == 200
    assert status_of(response.content.decode()) == expected


# --- check now ----------------------------------------------------------------------------------


def test_check_now_runs_the_probe_and_shows_it_once(staff_client, configure, sandbox, settings):
    health_states.healthy(configure, sandbox, settings)
    before = len([r for r in sandbox.state.requests if r.route == "profile"])
    response = staff_client.post(CHECK)
    assert response.status_code == 302 and response["Location"] == PAGE
    assert len([r for r in sandbox.state.requests if r.route == "profile"]) == before + 1
    html = staff_client.get(PAGE).content.decode()
    assert 'id="bs-probe-result" data-ok="true"' in html
    assert "The API answered 200 for &#x27;player_1&#x27;." in html
    assert re.search(r"<td>\d+(\.\d)? ms</td>", html)
    assert 'id="bs-probe-result"' not in staff_client.get(PAGE).content.decode()  # shown once


def test_check_now_counts_a_404_as_the_api_answering(staff_client, configure, sandbox, settings):
    configure(PROBE_ACCOUNT_ID="nobody_here")
    staff_client.post(CHECK)
    html = staff_client.get(PAGE).content.decode()
    assert 'data-ok="true"' in html and "PlayerNotFound (HTTP 404)" in html


def test_check_now_reports_a_failing_token_endpoint(staff_client, configure, sandbox, settings):
    sandbox.state.add_fault(Fault(target="token", kind="status", status=503))
    staff_client.post(CHECK)
    html = staff_client.get(PAGE).content.decode()
    assert 'data-ok="false"' in html and "TokenServerError" in html


def test_check_now_reports_a_failing_api(staff_client, configure, sandbox, settings):
    configure(MAX_RETRIES=0)
    sandbox.state.add_fault(Fault(target="api", kind="status", status=500))
    staff_client.post(CHECK)
    html = staff_client.get(PAGE).content.decode()
    assert 'data-ok="false"' in html and "ServiceUnavailable" in html


def test_check_now_needs_post_and_csrf(staff, configure, sandbox):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.get(CHECK).status_code == 405
    assert client.post(CHECK).status_code == 403  # no CSRF token
    page = client.get(PAGE).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(CHECK, {"csrfmiddlewaretoken": token}).status_code == 302


# --- what an operator needs, in words -------------------------------------------------------------


def test_beat_s_last_outcome_is_in_words_not_a_code(staff_client, configure, sandbox, settings):
    health_states.healthy(configure, sandbox, settings)
    assert health_states.beat_runs() == "not-due"  # its second run: the token is fresh
    html = staff_client.get(PAGE).content.decode()
    assert "(not-due)" not in html and "not-due" not in html.split('id="content-main"')[1]
    assert 'id="bs-beat-outcome">nothing to do: the token was not due for renewal<' in html
    assert 'id="bs-beat-schedule">renewal every 10 s; stale after 30 s<' in html


def test_a_failed_sync_shows_with_its_error(staff_client, configure, sandbox, settings):
    health_states.sync_failed(configure, sandbox, settings)
    html = staff_client.get(PAGE).content.decode()
    assert status_of(html) == "degraded"
    assert 'data-code="sync-failed"' in html
    failed = html.split('id="bs-sync-failed">', 1)[1].split("</dd>", 1)[0]
    assert "failed" in failed and "ago" in failed and "HTTP 403" in failed
    assert 'id="bs-sync-success"><span class="bs-bad">never</span>' in html


def test_a_resolved_error_says_so_with_its_age(staff_client, configure, sandbox, settings):
    health_states.error_resolved(configure, sandbox, settings)
    html = staff_client.get(PAGE).content.decode()
    assert status_of(html) == "ok"
    error = html.split('id="bs-last-error">', 1)[1].split("</dd>", 1)[0]
    assert 'id="bs-error-resolved">resolved</span>: a renewal succeeded since.' in error
    assert re.search(r"\d{2}:\d{2}:\d{2} UTC \(\d+ s ago\)", error)
    assert "rate limiting" in error


def test_an_unresolved_error_says_so(staff_client, configure, sandbox, settings):
    health_states.renewal_failing(configure, sandbox, settings)
    error = staff_client.get(PAGE).content.decode().split('id="bs-last-error">', 1)[1].split("</dd>", 1)[0]
    assert "unresolved" in error and "bs-error-resolved" not in error


def test_invalid_settings_do_not_claim_the_cache_is_unreachable(staff_client, configure, sandbox, settings):
    configure(ENVIRONMENT="prod")
    html = staff_client.get(PAGE).content.decode()
    assert status_of(html) == "down"
    assert 'data-code="config-invalid"' in html and 'data-code="cache-unreachable"' not in html
    assert "cache unreachable" not in html
    assert "unknown (the settings are invalid)" in html


def test_before_any_sync_the_page_says_none_has_run(staff_client, configure, sandbox, settings):
    health_states.healthy(configure, sandbox, settings)
    html = staff_client.get(PAGE).content.decode()
    assert status_of(html) == "ok"
    assert 'id="bs-sync-success">no sync has run yet<' in html
