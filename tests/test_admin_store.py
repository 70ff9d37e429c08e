"""The local store in the admin: read-only profiles with filters, chart and history; sync runs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import SyncRun
from bettorsense.sync import run_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("admin", "admin@example.invalid", "pw-for-tests")
    client.force_login(user)
    return client


@pytest.fixture
def synced(configure, sandbox):
    run_sync()
    sandbox.state.advance_day()
    run_sync()


def test_profiles_list_search_and_filters(synced, staff_client):
    base = "/admin/bettorsense/playerriskprofile/"
    page = staff_client.get(base)
    assert page.status_code == 200 and "player_1" in page.content.decode()
    found = staff_client.get(base, {"q": "player_4242"}).content.decode()
    assert "player_4242" in found and "player_4243" not in found
    high = staff_client.get(base, {"band__exact": "3"})
    assert high.status_code == 200
    expected = StoredProfile.objects.filter(band=3).count()
    assert f"{expected} player risk profile" in high.content.decode()
    scored = staff_client.get(base, {"score": "95-98"})
    assert f"{expected} player risk profile" in scored.content.decode()
    this_year = staff_client.get(base, {"changed_at__year": str(timezone.now().year)}).content.decode()
    assert f"{StoredProfile.objects.count()} player risk profiles" in this_year


def test_profile_detail_has_chart_and_history(synced, staff_client):
    changed = StoredProfile.objects.filter(changes__previous_score__isnull=False).first()
    assert changed is not None
    page = staff_client.get(f"/admin/bettorsense/playerriskprofile/{changed.pk}/change/").content.decode()
    assert "Category scores" in page and "bs-bar" in page and "Losses" in page
    assert "History" in page and "new" in page and f"{changed.risk_score:g}" in page


def test_profiles_are_read_only(synced, staff_client):
    assert staff_client.get("/admin/bettorsense/playerriskprofile/add/").status_code == 403
    pk = StoredProfile.objects.first().pk
    assert staff_client.post(f"/admin/bettorsense/playerriskprofile/{pk}/delete/").status_code == 403


def test_sync_runs_listed_and_started(configure, sandbox, staff_client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from project.celery import app

    app.conf.task_always_eager = True
    try:
        page = staff_client.get("/admin/bettorsense/syncrun/").content.decode()
        assert "Start an incremental sync" in page
        assert staff_client.get("/admin/bettorsense/syncrun/start/").status_code == 405
        response = staff_client.post("/admin/bettorsense/syncrun/start/", follow=True)
    finally:
        app.conf.task_always_eager = False
    assert "was queued" in response.content.decode()
    assert SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).count() == 1
    assert "Succeeded" in staff_client.get("/admin/bettorsense/syncrun/").content.decode()


def test_non_staff_cannot_start_a_sync(configure, sandbox, client):
    user = User.objects.create_user("player", password="pw-for-tests")
    client.force_login(user)
    response = client.post("/admin/bettorsense/syncrun/start/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert SyncRun.objects.count() == 0
