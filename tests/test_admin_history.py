"""A player's score through time in the admin: a server-rendered SVG with a factor legend, over the sandbox."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import RiskProfileChange
from bettorsense.sandbox.profiles import CATEGORY_NAMES
from bettorsense.sync import run_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.invalid", "pw-for-tests"))
    return client


def profile_page(client, profile: StoredProfile) -> str:
    answer = client.get(f"/admin/bettorsense/playerriskprofile/{profile.pk}/change/")
    assert answer.status_code == 200
    return answer.content.decode()


def chart_of(page: str) -> str:
    match = re.search(r'<figure class="bs-score-chart">.*?</figure>', page, re.S)
    assert match, "no score chart on the page"
    return match.group(0)


def test_the_chart_shows_each_change_and_names_every_factor(configure, sandbox, staff_client):
    run_sync()
    for _ in range(3):
        sandbox.state.advance_day()
        run_sync()
    profile = StoredProfile.objects.filter(changes__previous_score__isnull=False).distinct().first()
    assert profile is not None
    changes = RiskProfileChange.objects.filter(profile=profile)
    chart = chart_of(profile_page(staff_client, profile))
    assert chart.count("<circle") == changes.count() >= 2
    assert "<polyline" in chart and "<script" not in chart and "style=" not in chart
    legend = re.findall(r"</svg> ([^<]+)</li>", chart)
    assert sorted(legend) == sorted(CATEGORY_NAMES.values())
    # One bar per factor per change, each titled with what the vendor said.
    assert chart.count("<rect x=") == sum(len(c.category_scores) for c in changes)
    for change in changes:
        assert f"score {change.risk_score:g} " in chart
        assert f"percentile {change.percentile:g}" in chart


def test_a_malformed_stored_history_still_renders(configure, sandbox, staff_client):
    run_sync()
    profile = StoredProfile.objects.first()
    RiskProfileChange.objects.filter(profile=profile).update(
        category_scores=[{"key": "x"}, "junk", {"key": 1, "name": "<b>Losses</b>", "score": 2.0}]
    )
    StoredProfile.objects.filter(pk=profile.pk).update(category_scores={"not": "a list"})
    page = profile_page(staff_client, profile)
    chart = chart_of(page)
    assert chart.count("<rect x=") == 1 and "&lt;b&gt;Losses&lt;/b&gt;" in chart and "<b>Losses" not in page


def test_no_history_yet(configure, sandbox, staff_client):
    run_sync()
    profile = StoredProfile.objects.first()
    RiskProfileChange.objects.filter(profile=profile).delete()
    assert "No change recorded yet." in profile_page(staff_client, profile)
