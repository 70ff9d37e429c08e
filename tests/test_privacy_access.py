"""The access log: each look at a player's risk data is recorded, and the log is append-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection

from bettorsense.exceptions import AccessNotRecorded
from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.privacy.access import access_purpose, record_access
from bettorsense.privacy.models import AccessRecord
from bettorsense.services import get_player_risk_profile
from bettorsense.sync import run_sync

pytestmark = pytest.mark.django_db(transaction=True)

LOG = "/admin/bettorsense/accessrecord/"


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("auditor", "auditor@example.invalid", "pw-for-tests")
    client.force_login(user)
    return user


@pytest.fixture
def synced(configure, sandbox):
    run_sync()


def test_the_profile_page_records_who_looked_at_which_account(synced, staff, client):
    profile = StoredProfile.objects.get(account_id="player_7")
    assert client.get(f"/admin/bettorsense/playerriskprofile/{profile.pk}/change/").status_code == 200
    record = AccessRecord.objects.get(account_id="player_7")
    assert (record.user, record.username, record.through) == (staff, "auditor", AccessRecord.Through.PROFILE)


def test_the_profile_list_records_each_account_shown(synced, staff, client):
    page = client.get("/admin/bettorsense/playerriskprofile/", {"q": "player_4242"})
    assert "player_4242" in page.content.decode()
    assert list(AccessRecord.objects.values_list("account_id", "through", "purpose")) == [
        ("player_4242", "profile", "profile list")
    ]


def test_the_profile_command_records_an_access(synced, capsys):
    call_command("bettorsense_profile", "player_3", "--json")
    record = AccessRecord.objects.get(account_id="player_3")
    assert record.through == AccessRecord.Through.COMMAND and record.user is None and record.username


def test_host_calls_are_recorded_inside_access_purpose_only(configure, staff):
    get_player_risk_profile("player_5")
    assert not AccessRecord.objects.exists()
    with access_purpose("chargeback review", user=staff):
        get_player_risk_profile("player_5")
        with access_purpose("inner"):
            get_player_risk_profile("player_6")
    get_player_risk_profile("player_6")
    assert list(AccessRecord.objects.order_by("id").values_list("account_id", "through", "purpose", "username")) == [
        ("player_5", "host", "chargeback review", "auditor"),
        ("player_6", "host", "inner", ""),
    ]


def test_a_look_that_cannot_be_recorded_is_not_returned(configure, staff):
    table = AccessRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        with pytest.raises(AccessNotRecorded) as raised, access_purpose("audit", user=staff):
            get_player_risk_profile("player_5")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
    assert "player_5" not in str(raised.value)


def test_who_looked_at_account_x_is_one_filter(staff, client):
    other = User.objects.create_user("other")
    record_access(user=staff, account_id="player_1", through="profile")
    record_access(user=other, account_id="player_1", through="queue", purpose="weekly review")
    record_access(user=other, account_id="player_2", through="export")
    page = client.get(LOG, {"q": "player_1"}).content.decode()
    assert "2 access records" in page and "weekly review" in page and "player_2" not in page
    by_query = client.get(LOG, {"account_id": "player_2"}).content.decode()
    assert "1 access record" in by_query and "Export" in by_query


def test_the_log_is_append_only_and_has_its_own_permission(staff, client):
    record = record_access(user=staff, account_id="player_1", through="profile")
    assert client.get(f"{LOG}add/").status_code == 403
    assert client.post(f"{LOG}{record.pk}/delete/").status_code == 403
    assert client.post(f"{LOG}{record.pk}/change/", {"purpose": "edited"}).status_code == 403
    assert AccessRecord.objects.get().purpose == ""
    viewer = User.objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_playerriskprofile"))
    client.force_login(viewer)
    assert client.get(LOG).status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="view_accessrecord"))
    viewer = User.objects.get(pk=viewer.pk)
    client.force_login(viewer)
    assert client.get(LOG).status_code == 200


def test_the_profile_stream_records_each_profile_printed(configure, sandbox, capsys):
    sandbox.state.set_config(players=30)
    call_command("bettorsense_profile", "--all", "--purpose", "monthly audit")
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert printed
    records = AccessRecord.objects.all()
    assert records.count() == len(printed)
    assert set(records.values_list("through", "purpose")) == {("command", "monthly audit")}
