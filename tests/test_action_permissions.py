"""The admin actions that cost vendor calls: a permission of their own, a fleet-wide throttle, one queued sync.

And the demo view's ``?fresh=1``, which costs a vendor call too: staff only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client

from bettorsense.models import SyncRun
from bettorsense.sandbox import Fault, SandboxServer
from tests.support import health_states

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/admin/bettorsense/health/"
CHECK = "/admin/bettorsense/health/check/"
SYNC_LIST = "/admin/bettorsense/syncrun/"
SYNC_START = "/admin/bettorsense/syncrun/start/"
SYNC_TASK = "bettorsense.tasks.sync_risk_profiles"


def logged_in(django_user_model: Any, *codenames: str) -> Client:
    user = django_user_model.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="bettorsense", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def vendor_requests(sandbox: SandboxServer) -> int:
    stats = sandbox.state.stats()
    return int(stats["api_requests"]["total"]) + sum(int(c["total"]) for c in stats["token_requests"].values())


# --- Check now ----------------------------------------------------------------------------------


def test_view_only_staff_cannot_check_now_and_makes_no_vendor_call(configure, sandbox, django_user_model):
    client = logged_in(django_user_model, "view_health")
    page = client.get(PAGE).content.decode()
    assert 'id="bs-check-now"' not in page and 'id="bs-probe-not-allowed"' in page
    for _ in range(5):
        assert client.post(CHECK).status_code == 403
    assert vendor_requests(sandbox) == 0


def test_twenty_fast_presses_make_one_vendor_call(configure, sandbox, django_user_model):
    health_states.beat_runs()  # the fleet has a token: the probe costs its API call only
    before = vendor_requests(sandbox)
    client = logged_in(django_user_model, "view_health", "run_probe")
    assert 'id="bs-check-now"' in client.get(PAGE).content.decode()
    pages = []
    for _ in range(20):
        assert client.post(CHECK).status_code == 302
        pages.append(client.get(PAGE).content.decode())
    assert vendor_requests(sandbox) - before == 1
    assert sandbox.state.stats()["api_requests"]["total"] == 1
    first, *later = pages
    assert 'id="bs-probe-result" data-ok="true"' in first and 'id="bs-probe-reused"' not in first
    for html in later:  # each later press sees the fleet's last result, with its age
        assert 'id="bs-probe-reused"' in html and 'id="bs-probe-result" data-ok="true"' in html
        assert " s ago" in html


def test_the_throttle_is_fleet_wide(configure, sandbox, django_user_model):
    """A second staff member (another session, maybe another process) gets the first one's result."""
    health_states.beat_runs()
    first = logged_in(django_user_model, "view_health", "run_probe")
    second_user = django_user_model.objects.create_user("ops2", password="pw-ops-12345", is_staff=True)
    second_user.user_permissions.add(*Permission.objects.filter(codename__in=("view_health", "run_probe")))
    second = Client()
    second.force_login(second_user)
    first.post(CHECK)
    second.post(CHECK)
    assert sandbox.state.stats()["api_requests"]["total"] == 1
    assert 'id="bs-probe-reused"' in second.get(PAGE).content.decode()


# --- Start a sync -------------------------------------------------------------------------------


@pytest.fixture
def memory_broker() -> Iterator[Callable[[], int]]:
    """Celery publishing to an in-memory broker; returns a counter of the sync messages queued."""
    from project.celery import app

    saved = (
        app.conf.broker_url,
        app.conf.broker_transport,
        app.conf.broker_transport_options,
        app.conf.task_always_eager,
    )
    app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options = "memory://", None, {}
    app.conf.task_always_eager = False
    # The connection and producer pools are made from broker_url on first use, and cached.
    app._pool = None
    app.amqp._producer_pool = None
    queue = app.conf.task_default_queue

    def queued() -> int:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            count = 0
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                count += message.headers.get("task") == SYNC_TASK
            return count

    try:
        yield queued
    finally:
        (
            app.conf.broker_url,
            app.conf.broker_transport,
            app.conf.broker_transport_options,
            app.conf.task_always_eager,
        ) = saved
        app._pool = None
        app.amqp._producer_pool = None


def test_view_only_staff_cannot_start_a_sync(configure, sandbox, django_user_model, memory_broker):
    client = logged_in(django_user_model, "view_syncrun")
    page = client.get(SYNC_LIST)
    assert page.status_code == 200 and "Start an incremental sync" not in page.content.decode()
    for _ in range(5):
        assert client.post(SYNC_START).status_code == 403
    assert memory_broker() == 0 and SyncRun.objects.count() == 0


def test_five_posts_queue_one_sync(configure, sandbox, django_user_model, memory_broker):
    client = logged_in(django_user_model, "view_syncrun", "start_sync")
    assert "Start an incremental sync" in client.get(SYNC_LIST).content.decode()
    answers = [client.post(SYNC_START, follow=True).content.decode() for _ in range(5)]
    assert memory_broker() == 1
    assert "was queued" in answers[0]
    assert all("already queued" in answer for answer in answers[1:])


def test_a_new_sync_can_be_queued_once_the_queued_one_started(configure, sandbox, django_user_model, memory_broker):
    from bettorsense.sync import run_sync

    client = logged_in(django_user_model, "view_syncrun", "start_sync")
    client.post(SYNC_START)
    assert memory_broker() == 1
    run_sync()  # what the worker does with the message: a new SyncRun appears
    client.post(SYNC_START)
    client.post(SYNC_START)
    assert memory_broker() == 1


# --- the demo user ------------------------------------------------------------------------------


def test_demo_user_may_check_now_start_a_sync_and_see_the_store(configure, django_user_model, client):
    call_command("bettorsense_demo_user", stdout=StringIO())
    user = django_user_model.objects.get(username="bettorsense-demo")
    for permission in ("view_health", "run_probe", "view_syncrun", "start_sync", "view_playerriskprofile"):
        assert user.has_perm(f"bettorsense.{permission}"), permission
    client.force_login(user)
    assert client.get("/admin/bettorsense/playerriskprofile/").status_code == 200


# --- the demo view ------------------------------------------------------------------------------

PROFILE = "/players/player_1/risk-profile/"


def test_fresh_is_ignored_silently_for_anonymous_callers(configure, sandbox, client):
    cached = client.get(PROFILE)
    assert cached.status_code == 200
    calls = sandbox.state.stats()["api_requests"]["total"]
    answers = [client.get(PROFILE + "?fresh=1") for _ in range(5)]
    for answer in answers:
        assert answer.status_code == 200 and answer.json()["source"] == "cache"
        assert answer.json()["riskScore"] == cached.json()["riskScore"]
    assert sandbox.state.stats()["api_requests"]["total"] == calls  # the cached answer, each time


def test_fresh_is_honoured_for_staff(configure, sandbox, django_user_model):
    client = logged_in(django_user_model)
    assert client.get(PROFILE).status_code == 200
    calls = sandbox.state.stats()["api_requests"]["total"]
    fresh = client.get(PROFILE + "?fresh=1")
    assert fresh.status_code == 200 and fresh.json()["source"] == "api"
    assert sandbox.state.stats()["api_requests"]["total"] == calls + 1


def test_error_bodies_name_no_url_no_backoff_internals_and_no_setting(configure, sandbox, client):
    configure(TOKEN_URL="http://probe-user:url-pass-4711@127.0.0.1:9/oauth/token", BACKOFF_BASE=30)
    unreachable = client.get(PROFILE)
    assert unreachable.status_code == 503
    body = unreachable.json()
    assert body["error"] == "TokenEndpointUnreachable" and body["message"]
    backing_off = client.get(PROFILE)  # the fleet now backs off
    assert backing_off.json()["error"] == "TokenBackoff"
    for answer in (unreachable, backing_off):
        text = answer.content.decode()
        for internal in ("url-pass-4711", "probe-user", "127.0.0.1", "http://", "TOKEN_URL", "retries in", "BACKOFF"):
            assert internal not in text, (internal, text)


def test_error_body_of_a_vendor_refusal_has_no_hint(configure, sandbox, client):
    sandbox.state.add_fault(Fault(target="token", kind="status", status=401))
    answer = client.get(PROFILE)
    assert answer.status_code == 502 and answer.json()["error"] == "InvalidCredentials"
    assert "CLIENT_SECRET" not in answer.content.decode() and "Check BETTORSENSE" not in answer.content.decode()
