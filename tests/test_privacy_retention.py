"""Retention: bettorsense_purge and the daily task remove each table's rows past its own setting."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from bettorsense import tasks
from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import RiskProfileChange
from bettorsense.privacy.models import AccessRecord
from bettorsense.privacy.retention import purge_expired

pytestmark = pytest.mark.django_db(transaction=True)

DAY = 86400.0


@pytest.fixture
def aged(configure):
    """Two profiles, each with changes 1, 10 and 100 days old, and access rows of the same ages."""
    now = timezone.now()
    ages = (1, 10, 100)
    for account in ("player_1", "player_2"):
        profile = StoredProfile.objects.create(
            bookmaker_id=123,
            sub_bookmaker_id=456,
            account_id=account,
            risk_score=50.0,
            band=1,
            fetched_at=now,
            changed_at=now,
        )
        for age in ages:
            RiskProfileChange.objects.create(
                profile=profile, risk_score=float(age), band=1, recorded_at=now - timedelta(days=age)
            )
            AccessRecord.objects.create(account_id=account, through="profile", at=now - timedelta(days=age))
    return now


def ages_left(model, field):
    now = timezone.now()
    return sorted(round((now - getattr(row, field)).total_seconds() / DAY) for row in model.objects.all())


def test_each_table_follows_its_own_retention(aged, configure):
    configure(HISTORY_RETENTION=50 * DAY, ACCESS_LOG_RETENTION=5 * DAY)
    outcomes = {o.table: o for o in purge_expired()}
    assert ages_left(RiskProfileChange, "recorded_at") == [1, 1, 10, 10]
    assert ages_left(AccessRecord, "at") == [1, 1]
    assert outcomes["bettorsense.RiskProfileChange"].removed == 2
    assert outcomes["bettorsense.AccessRecord"].removed == 4


def test_the_latest_change_of_each_profile_is_kept_however_old(aged, configure):
    configure(HISTORY_RETENTION=0.5 * DAY)
    purge_expired()
    assert ages_left(RiskProfileChange, "recorded_at") == [1, 1]


def test_zero_keeps_a_table_for_ever(aged, configure):
    configure(HISTORY_RETENTION=0, REVIEW_RETENTION=0, ACCESS_LOG_RETENTION=0)
    outcomes = purge_expired()
    assert RiskProfileChange.objects.count() == 6 and AccessRecord.objects.count() == 6
    assert all(o.cutoff is None and o.removed == 0 for o in outcomes)


def test_the_defaults_keep_two_years_of_history_and_access_log(aged):
    purge_expired(now=aged + timedelta(days=700))  # the rows are then 701, 710 and 800 days old
    assert ages_left(AccessRecord, "at") == [1, 1, 10, 10]
    assert ages_left(RiskProfileChange, "recorded_at") == [1, 1, 10, 10]


def test_a_dry_run_counts_and_removes_nothing(aged, configure):
    configure(HISTORY_RETENTION=50 * DAY, ACCESS_LOG_RETENTION=5 * DAY)
    out = StringIO()
    call_command("bettorsense_purge", "--dry-run", stdout=out)
    assert RiskProfileChange.objects.count() == 6 and AccessRecord.objects.count() == 6
    assert "bettorsense.RiskProfileChange" in out.getvalue() and "2 would be removed" in out.getvalue()
    assert "4 would be removed" in out.getvalue() and "nothing was removed" in out.getvalue()


def test_the_daily_task_purges(aged, configure):
    configure(ACCESS_LOG_RETENTION=5 * DAY)
    assert "bettorsense.AccessRecord: 4" in tasks.purge_expired.apply().get()
    assert AccessRecord.objects.count() == 2
