"""Reviews under erasure and retention: each ERASE_REVIEWS policy, and REVIEW_RETENTION."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import RiskProfileChange
from bettorsense.privacy.erasure import erase_player
from bettorsense.privacy.pseudonyms import pseudonym
from bettorsense.privacy.retention import purge_expired
from bettorsense.reviews.models import Review
from bettorsense.reviews.recording import record_review
from bettorsense.services import account_digest
from tests.support.player_traces import erasing_alone, traces

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _alone() -> Iterator[None]:
    """Both files erase player_42 (see ``erasing_alone``); autouse, so it is held before any planting."""
    with erasing_alone():
        yield


PLAYER = "player_42"
DAY = 86400.0


@pytest.fixture
def reviewed(configure):
    """The player with two changes, a review of the first, and a correction quoting the id in its note."""
    now = timezone.now()
    staff = User.objects.create_user("reviewer")
    profile = StoredProfile.objects.create(
        bookmaker_id=123,
        sub_bookmaker_id=456,
        account_id=PLAYER,
        risk_score=97.0,
        band=3,
        fetched_at=now,
        changed_at=now,
    )
    first = RiskProfileChange.objects.create(profile=profile, risk_score=96.0, band=3, recorded_at=now)
    RiskProfileChange.objects.create(profile=profile, risk_score=97.0, band=3, recorded_at=now)
    review = record_review(user=staff, change=first, outcome="needs-review", note=f"called {PLAYER} twice")
    record_review(user=staff, corrects=review, outcome="cleared", note="spoke to them")
    return review


def test_erase_pseudonymises_reviews_by_default(reviewed):
    erasure = erase_player(PLAYER)
    assert traces([PLAYER, account_digest(PLAYER)]) == []
    rows = list(Review.objects.order_by("id").values_list("account_id", "note", "change_id", "profile_id"))
    assert rows == [
        (pseudonym(PLAYER), f"called {pseudonym(PLAYER)} twice", None, None),
        (pseudonym(PLAYER), "spoke to them", None, None),
    ]
    outcome = next(t for t in erasure.tables if t.table == "bettorsense.Review")
    assert (outcome.found, outcome.pseudonymised, outcome.removed) == (2, 2, 0)


def test_erase_deletes_reviews_and_their_corrections(reviewed, configure):
    configure(ERASE_REVIEWS="delete", ERASE_ACCESS_LOG="delete")
    erase_player(PLAYER)
    assert not Review.objects.exists()
    assert traces([PLAYER, account_digest(PLAYER), pseudonym(PLAYER)]) == []


def test_erase_can_keep_reviews_unlinked_from_the_erased_history(reviewed, configure):
    configure(ERASE_REVIEWS="keep")
    erase_player(PLAYER)
    assert list(Review.objects.values_list("account_id", "change_id", "profile_id")) == [(PLAYER, None, None)] * 2


def test_a_dry_run_leaves_reviews_as_they_were(reviewed):
    before = list(Review.objects.order_by("id").values())
    erase_player(PLAYER, dry_run=True)
    assert list(Review.objects.order_by("id").values()) == before


def test_purge_keeps_reviewed_changes_and_removes_old_reviews_correction_first(reviewed, configure):
    old = timezone.now() - timedelta(days=40)
    Review.objects.update(recorded_at=old)
    RiskProfileChange.objects.update(recorded_at=old)
    configure(HISTORY_RETENTION=10 * DAY, REVIEW_RETENTION=0)
    purge_expired()
    # The reviewed change stays while its review does; the other is the profile's latest.
    assert RiskProfileChange.objects.count() == 2
    configure(HISTORY_RETENTION=10 * DAY, REVIEW_RETENTION=30 * DAY)
    outcomes = {o.table: o.removed for o in purge_expired()}
    assert outcomes["bettorsense.Review"] == 2 and not Review.objects.exists()
    assert RiskProfileChange.objects.count() == 1  # the reviewed change went with its review
