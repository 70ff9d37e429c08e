"""The review queue and the interaction record, over profiles synced from the sandbox.

The queue is fed by real syncs (the sandbox rescores players day by day); reviews are recorded
through the admin's pages or ``record_review``, as staff and the admin do.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import RestrictedError
from django.test import Client

from bettorsense.models import PlayerRiskProfile, RiskProfileChange
from bettorsense.privacy.models import AccessRecord
from bettorsense.profiles import RiskBand
from bettorsense.reviews import queue
from bettorsense.reviews.export import HEADER, neutralise
from bettorsense.reviews.models import AppendOnlyError, Review
from bettorsense.reviews.recording import record_review
from bettorsense.reviews.signals import review_recorded
from bettorsense.sync import run_sync

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE_URL = "/admin/bettorsense/reviewqueue/"
REVIEWS_URL = "/admin/bettorsense/review/"
EXPORT_URL = "/admin/bettorsense/review/export/"
ALL_PERMISSIONS = ("view_playerriskprofile", "record_review", "export_reviews", "view_review")


def make_staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw-for-tests", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="bettorsense", codename__in=codenames))
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def synced(configure: Any, sandbox: Any) -> Any:
    """The initial load of a 600-player sandbox."""
    sandbox.state.set_config(players=600)
    run_sync()
    return sandbox


@pytest.fixture
def reviewer() -> User:
    return make_staff("reviewer", *ALL_PERMISSIONS)


def queued_accounts(level: RiskBand = RiskBand.HIGH) -> list[str]:
    return [change.profile.account_id for change in queue.queued(level)]


def expected_queue(level: RiskBand) -> set[str]:
    """The queue's rule, restated over the rows: the latest entering change of each player, unanswered."""
    waiting = set()
    for profile in PlayerRiskProfile.objects.all():
        entries = [
            c.id
            for c in profile.changes.all()
            if c.band >= level and (c.previous_band is None or c.band > c.previous_band)
        ]
        if entries and not profile.reviews.filter(change_id__gte=max(entries)).exists():
            waiting.add(profile.account_id)
    return waiting


def review_all_queued(user: User) -> int:
    changes = list(queue.queued(RiskBand.HIGH))
    for change in changes:
        record_review(user=user, change=change, outcome="cleared")
    return len(changes)


# The queue


def test_initial_load_queues_players_first_seen_at_the_level_or_above(synced: Any, settings: Any, configure: Any):
    high_or_above = set(PlayerRiskProfile.objects.filter(band__gte=RiskBand.HIGH).values_list("account_id", flat=True))
    assert high_or_above, "the sandbox has high-risk players"
    accounts = queued_accounts()
    assert set(accounts) == high_or_above and len(accounts) == len(high_or_above)
    entries = list(queue.queued(RiskBand.HIGH))
    assert [(e.recorded_at, e.id) for e in entries] == sorted((e.recorded_at, e.id) for e in entries)

    configure(REVIEW_BAND="very_high")
    assert queue.review_level() == RiskBand.VERY_HIGH
    very_high = set(PlayerRiskProfile.objects.filter(band=RiskBand.VERY_HIGH).values_list("account_id", flat=True))
    assert set(queued_accounts(queue.review_level())) == very_high != high_or_above


def test_a_review_clears_the_player_and_a_later_rise_queues_them_again(synced: Any, reviewer: User):
    first = queue.queued(RiskBand.HIGH).first()
    assert first is not None
    record_review(user=reviewer, change=first, outcome="needs-review")
    assert first.profile.account_id not in queued_accounts()

    reviewed = review_all_queued(reviewer) + 1
    assert queued_accounts() == []
    requeued = set()
    for _ in range(4):
        synced.state.advance_day()
        run_sync()
        now_queued = set(queued_accounts())
        assert now_queued == expected_queue(RiskBand.HIGH)
        requeued |= now_queued & set(Review.objects.values_list("account_id", flat=True))
        for change in queue.queued(RiskBand.HIGH):
            assert change.band >= RiskBand.HIGH and change.previous_band is not None
            assert change.band > change.previous_band  # a rise into or within the level, after the review
    assert requeued, f"a rise after one of the {reviewed} reviews queues that player again"


def test_a_player_who_falls_back_before_a_review_stays_queued(synced: Any, reviewer: User):
    for _ in range(6):
        synced.state.advance_day()
        run_sync()
        fell = [c for c in queue.queued(RiskBand.HIGH) if c.profile.band < RiskBand.HIGH]
        if fell:
            break
    assert fell, "some queued player's band fell below High within six sandbox days"
    change = fell[0]
    assert change.profile.account_id in queued_accounts()
    record_review(user=reviewer, change=change, outcome="cleared")
    assert change.profile.account_id not in queued_accounts()


# The record


def test_a_review_is_append_only_and_a_correction_is_a_new_entry(synced: Any, reviewer: User):
    change = queue.queued(RiskBand.HIGH).first()
    review = record_review(user=reviewer, change=change, outcome="cleared", note="looked fine")

    review.note = "rewritten"
    with pytest.raises(AppendOnlyError):
        review.save()
    with pytest.raises(AppendOnlyError):
        review.delete()
    copy = Review.objects.get(pk=review.pk)
    copy._state.adding = True  # as a new object with the recorded row's pk
    with pytest.raises(IntegrityError), transaction.atomic():
        copy.save()
    assert Review.objects.get(pk=review.pk).note == "looked fine"

    correction = record_review(
        user=reviewer, corrects=review, outcome="intervention", method="care-call", note="called: it was not fine"
    )
    assert correction.pk != review.pk and correction.corrects_id == review.pk
    assert correction.change_id == change.pk and correction.account_id == change.profile.account_id
    assert (correction.band, correction.risk_score) == (change.band, change.risk_score)
    assert Review.objects.get(pk=review.pk).outcome == "cleared"
    assert Review.objects.count() == 2

    # Retention and erasure delete in bulk: a corrected review only together with its corrections.
    with pytest.raises(RestrictedError), transaction.atomic():
        Review.objects.filter(pk=review.pk).delete()
    assert Review.objects.count() == 2
    Review.objects.filter(account_id=review.account_id).delete()
    assert Review.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"outcome": "intervention"}, "method"),
        ({"outcome": "intervention", "method": "other"}, "note"),
        ({"outcome": "cleared", "method": "email"}, "method"),
        ({"outcome": "needs-review", "model_initiated": True}, "model_initiated"),
        ({"outcome": "intervention", "method": "carrier-pigeon"}, "method"),
        ({"outcome": "closed"}, "outcome"),
        ({"outcome": "cleared", "note": "x" * 2001}, "note"),
    ],
)
def test_a_review_refuses_what_does_not_fit(synced: Any, reviewer: User, fields: dict[str, Any], field: str):
    change = queue.queued(RiskBand.HIGH).first()
    with pytest.raises(ValidationError) as refused:
        record_review(user=reviewer, change=change, **fields)
    assert field in refused.value.message_dict
    assert Review.objects.count() == 0


def test_a_review_needs_a_signed_in_user(synced: Any):
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(ValueError, match="signed-in"):
        record_review(user=AnonymousUser(), change=RiskProfileChange.objects.first(), outcome="cleared")
    assert Review.objects.count() == 0


# The admin pages and their permissions


def test_each_act_needs_its_permission(synced: Any):
    change = queue.queued(RiskBand.HIGH).first()
    review_url = f"{QUEUE_URL}{change.pk}/review/"
    nobody = logged_in(make_staff("nobody"))
    for url in (QUEUE_URL, review_url, REVIEWS_URL, f"{EXPORT_URL}?first=2026-01-01&last=2026-12-31"):
        assert nobody.get(url).status_code == 403, url
    assert nobody.post(review_url, {"outcome": "cleared"}).status_code == 403

    viewer = logged_in(make_staff("viewer", "view_playerriskprofile"))
    page = viewer.get(QUEUE_URL)
    assert page.status_code == 200 and change.profile.account_id in page.content.decode()
    assert "bs-review" not in page.content.decode()  # no "Review" button without record_review
    assert viewer.get(review_url).status_code == 403
    assert viewer.post(review_url, {"outcome": "cleared"}).status_code == 403
    assert viewer.get(EXPORT_URL).status_code == 403

    recorder_without_risk = logged_in(make_staff("recorder", "record_review"))
    assert recorder_without_risk.post(review_url, {"outcome": "cleared"}).status_code == 403
    assert Review.objects.count() == 0

    exporter = logged_in(make_staff("exporter", "export_reviews"))
    assert exporter.get(EXPORT_URL).status_code == 200
    assert exporter.get(QUEUE_URL).status_code == 403


def test_the_record_cannot_be_added_changed_or_deleted_in_the_admin(synced: Any, reviewer: User):
    review = record_review(user=reviewer, change=queue.queued(RiskBand.HIGH).first(), outcome="cleared")
    superuser = logged_in(User.objects.create_superuser("root", "root@example.invalid", "pw-for-tests"))
    assert superuser.get(f"{REVIEWS_URL}add/").status_code == 403
    assert superuser.post(f"{REVIEWS_URL}{review.pk}/delete/").status_code == 403
    page = superuser.get(f"{REVIEWS_URL}{review.pk}/change/")
    assert page.status_code == 200 and "Record a correction" in page.content.decode()
    superuser.post(f"{REVIEWS_URL}{review.pk}/change/", {"outcome": "intervention", "note": "edited"})
    assert Review.objects.get(pk=review.pk).outcome == "cleared" and Review.objects.count() == 1


def test_the_queue_page_counts_and_filters(synced: Any, reviewer: User):
    client = logged_in(reviewer)
    entries = list(queue.queued(RiskBand.HIGH))
    page = client.get(QUEUE_URL).content.decode()
    assert f'data-total="{len(entries)}"' in page
    very_high = sum(1 for e in entries if e.profile.band == RiskBand.VERY_HIGH)
    high = sum(1 for e in entries if e.profile.band == RiskBand.HIGH)
    assert f"Very high risk: {very_high}<" in page and f"High risk: {high}<" in page
    assert f"under a day: {len(entries)}<" in page and "7 days or more: 0<" in page

    only_very_high = client.get(QUEUE_URL, {"band": "4"}).content.decode()
    assert only_very_high.count('class="bs-entry"') == very_high
    assert only_very_high.count('class="bs-entry"') < page.count('class="bs-entry"')
    assert client.get(QUEUE_URL, {"age": "7-"}).content.decode().count('class="bs-entry"') == 0
    assert client.get(QUEUE_URL, {"bookmaker": "999"}).content.decode().count('class="bs-entry"') == 0
    assert client.get(QUEUE_URL, {"bookmaker": "123"}).content.decode().count('class="bs-entry"') == len(entries)
    for junk in ({"band": "abc"}, {"band": "9"}, {"bookmaker": "²"}, {"bookmaker": "9" * 40}, {"page": "x"}):
        answer = client.get(QUEUE_URL, junk)
        assert answer.status_code == 200, junk
        assert answer.content.decode().count('class="bs-entry"') == len(entries), junk


def test_the_form_records_who_and_when_from_the_request_and_the_player_leaves(synced: Any, reviewer: User):
    client = logged_in(reviewer)
    change = queue.queued(RiskBand.HIGH).first()
    account = change.profile.account_id
    form = client.get(f"{QUEUE_URL}{change.pk}/review/").content.decode()
    assert account in form and "care-call" in form and "recorded_by" not in form

    response = client.post(
        f"{QUEUE_URL}{change.pk}/review/",
        {
            "outcome": "intervention",
            "method": "care-call",
            "model_initiated": "on",
            "note": "called the player",
            # not fields of the form: ignored
            "recorded_by": "someone-else",
            "recorded_by_username": "someone-else",
            "recorded_at": "2001-01-01T00:00:00Z",
            "account_id": "player_2",
        },
        follow=True,
    )
    review = Review.objects.get()
    assert review.recorded_by == reviewer and review.recorded_by_username == "reviewer"
    assert review.recorded_at.year != 2001
    assert (review.account_id, review.change_id) == (account, change.pk)
    assert (review.outcome, review.method, review.model_initiated) == ("intervention", "care-call", True)
    assert response.redirect_chain[-1][0] == QUEUE_URL
    page = response.content.decode()
    assert f"Review recorded (review {review.pk})." in page and f'data-account="{account}"' not in page


def test_an_invalid_form_records_nothing_and_says_why(synced: Any, reviewer: User):
    client = logged_in(reviewer)
    change = queue.queued(RiskBand.HIGH).first()
    response = client.post(f"{QUEUE_URL}{change.pk}/review/", {"outcome": "intervention", "note": "no method"})
    assert response.status_code == 200 and "An intervention needs its method." in response.content.decode()
    assert client.post(f"{QUEUE_URL}{change.pk}/review/", {}).status_code == 200
    for missing in ("999999999", "9" * 40):
        assert client.get(f"{QUEUE_URL}{missing}/review/").status_code == 404
        assert client.post(f"{QUEUE_URL}{missing}/review/", {"outcome": "cleared"}).status_code == 404
        assert client.get(f"{REVIEWS_URL}{missing}/correct/").status_code == 404
    assert Review.objects.count() == 0


def test_a_correction_from_the_review_page(synced: Any, reviewer: User):
    client = logged_in(reviewer)
    review = record_review(user=reviewer, change=queue.queued(RiskBand.HIGH).first(), outcome="cleared")
    response = client.post(
        f"{REVIEWS_URL}{review.pk}/correct/", {"outcome": "intervention", "method": "limits-update"}, follow=True
    )
    assert "Correction recorded" in response.content.decode()
    correction = Review.objects.exclude(pk=review.pk).get()
    assert correction.corrects_id == review.pk and correction.change_id == review.change_id
    assert response.redirect_chain[-1][0] == f"{REVIEWS_URL}{correction.pk}/change/"
    assert (
        logged_in(make_staff("viewer", "view_playerriskprofile")).get(f"{REVIEWS_URL}{review.pk}/correct/").status_code
        == 403
    )


def test_a_second_review_of_the_same_change_is_flagged_and_kept(synced: Any, reviewer: User):
    client = logged_in(reviewer)
    change = queue.queued(RiskBand.HIGH).first()
    url = f"{QUEUE_URL}{change.pk}/review/"
    assert "bs-already-answered" not in client.get(url).content.decode()
    record_review(user=make_staff("colleague", *ALL_PERMISSIONS), change=change, outcome="cleared")
    form = client.get(url).content.decode()
    assert "bs-already-answered" in form and "colleague" in form
    assert client.post(url, {"outcome": "needs-review"}).status_code == 302
    assert sorted(Review.objects.values_list("outcome", flat=True)) == ["cleared", "needs-review"]


def test_a_review_outlives_the_history_it_answered_and_can_still_be_corrected(synced: Any, reviewer: User):
    change = queue.queued(RiskBand.HIGH).first()
    account, band, score = change.profile.account_id, change.band, change.risk_score
    review = record_review(user=reviewer, change=change, outcome="cleared")
    RiskProfileChange.objects.filter(pk=change.pk).delete()  # as a history retention would
    review = Review.objects.get(pk=review.pk)
    assert review.change_id is None and (review.account_id, review.band, review.risk_score) == (account, band, score)
    response = logged_in(reviewer).post(
        f"{REVIEWS_URL}{review.pk}/correct/", {"outcome": "intervention", "method": "email"}, follow=True
    )
    assert "Correction recorded" in response.content.decode()
    correction = Review.objects.get(corrects=review)
    assert correction.change_id is None and (correction.account_id, correction.band) == (account, band)


# The export


def _dated_reviews(user: User) -> dict[str, Review]:
    changes = list(queue.queued(RiskBand.HIGH)[:4])
    notes = {
        "2026-11-01T12:00:00": "early",
        "2026-11-10T00:00:00": '=HYPERLINK("http://evil.invalid","x")',
        "2026-11-20T08:00:00": "  +1+cmd|' /C calc'!A0",
        "2026-11-30T23:59:59": "@SUM(A1)",
    }
    made = {}
    for change, (when, note) in zip(changes, notes.items(), strict=True):
        review = record_review(user=user, change=change, outcome="cleared", note=note)
        # Moving a row in time needs the queryset: the record itself refuses to change.
        Review.objects.filter(pk=review.pk).update(recorded_at=datetime.fromisoformat(when).replace(tzinfo=UTC))
        made[when[:10]] = review
    return made


def _export(client: Client, first: str, last: str) -> tuple[Any, list[list[str]]]:
    response = client.get(EXPORT_URL, {"first": first, "last": last})
    if response.status_code != 200 or not response.streaming:
        return response, []
    body = b"".join(response.streaming_content).decode()
    return response, list(csv.reader(io.StringIO(body)))


def test_the_export_covers_its_date_range_whole_days_included(synced: Any, reviewer: User):
    made = _dated_reviews(reviewer)
    client = logged_in(reviewer)
    response, rows = _export(client, "2026-11-10", "2026-11-30")
    assert response.streaming and "text/csv" in response["Content-Type"]
    assert response["Content-Disposition"] == 'attachment; filename="bettorsense-reviews-2026-11-10-to-2026-11-30.csv"'
    assert tuple(rows[0]) == HEADER
    ids = [int(row[0]) for row in rows[1:]]
    assert ids == [made[d].pk for d in ("2026-11-10", "2026-11-20", "2026-11-30")]
    first = dict(zip(HEADER, rows[1], strict=True))
    assert first["account_id"] == made["2026-11-10"].account_id and first["recorded_by"] == "reviewer"
    assert first["recorded_at"] == "2026-11-10T00:00:00+00:00" and first["outcome"] == "cleared"

    assert [int(r[0]) for r in _export(client, "2026-11-01", "2026-11-01")[1][1:]] == [made["2026-11-01"].pk]
    assert _export(client, "2026-12-01", "9999-12-31")[1][1:] == []
    assert len(_export(client, "0001-01-01", "9999-12-31")[1][1:]) == len(made)
    for bad in (("2026-11-30", "2026-11-01"), ("2026-13-01", "2026-11-01"), ("", "2026-11-01"), ("x", "y")):
        assert client.get(EXPORT_URL, {"first": bad[0], "last": bad[1]}).status_code == 400, bad


def test_the_export_neutralises_formulas(synced: Any, reviewer: User):
    _dated_reviews(reviewer)
    _, rows = _export(logged_in(reviewer), "2026-11-01", "2026-11-30")
    notes = [dict(zip(HEADER, row, strict=True))["note"] for row in rows[1:]]
    assert notes == [
        "early",
        '\'=HYPERLINK("http://evil.invalid","x")',
        "'  +1+cmd|' /C calc'!A0",
        "'@SUM(A1)",
    ]
    for cell in ("=1", "+1", "-1", "@x", "\t=1", "\r=1", " =1"):
        assert neutralise(cell) == "'" + cell
    for cell in ("player_1", "1.5", "a=b", ""):
        assert neutralise(cell) == cell


# The access log


def looks(through: str) -> list[tuple[str, str, str]]:
    return sorted(
        AccessRecord.objects.filter(through=through).values_list("username", "account_id", "purpose"), key=str
    )


def test_each_look_at_risk_data_is_in_the_access_log(synced: Any, reviewer: User):
    client = logged_in(reviewer)
    shown = queued_accounts()
    client.get(QUEUE_URL)
    assert looks("queue") == sorted((("reviewer", a, "review queue") for a in shown), key=str)

    AccessRecord.objects.all().delete()
    change = queue.queued(RiskBand.HIGH).first()
    account = change.profile.account_id
    client.get(f"{QUEUE_URL}{change.pk}/review/")
    assert looks("queue") == [("reviewer", account, "review form")]
    client.post(f"{QUEUE_URL}{change.pk}/review/", {"outcome": "cleared"})  # recorded, redirected: no page shown
    assert len(looks("queue")) == 1

    AccessRecord.objects.all().delete()
    review = Review.objects.get()
    client.get(REVIEWS_URL)
    client.get(f"{REVIEWS_URL}{review.pk}/change/")
    client.get(f"{REVIEWS_URL}{review.pk}/correct/")
    assert [purpose for _, _, purpose in looks("queue")] == sorted(
        ["reviews list", "review page", "review correction form"]
    )
    assert {a for _, a, _ in looks("queue")} == {account}

    AccessRecord.objects.all().delete()
    logged_in(make_staff("nobody")).get(QUEUE_URL)  # refused: nothing shown, nothing logged
    assert AccessRecord.objects.count() == 0


def test_an_export_logs_each_account_it_names(synced: Any, reviewer: User):
    made = _dated_reviews(reviewer)
    AccessRecord.objects.all().delete()
    _export(logged_in(reviewer), "2026-11-10", "2026-11-30")
    expected = sorted(
        (
            ("reviewer", made[d].account_id, "reviews export 2026-11-10 to 2026-11-30")
            for d in made
            if d >= "2026-11-10"
        ),
        key=str,
    )
    assert looks("export") == expected
    logged_in(reviewer).get(EXPORT_URL, {"first": "2026-11-30", "last": "2026-11-01"})  # refused range
    assert len(looks("export")) == len(expected)


# The signal


def test_review_recorded_is_sent_once_after_commit(synced: Any, reviewer: User, caplog: Any):
    heard: list[Review] = []

    def failing(sender: Any, review: Review, **kwargs: Any) -> None:
        raise RuntimeError("the host's receiver broke")

    def listening(sender: Any, review: Review, **kwargs: Any) -> None:
        heard.append(review)

    review_recorded.connect(failing, weak=False)
    review_recorded.connect(listening, weak=False)
    try:
        change = queue.queued(RiskBand.HIGH).first()
        with transaction.atomic():
            record_review(user=reviewer, change=change, outcome="cleared")
            assert heard == []  # not before the commit
        assert [r.change_id for r in heard] == [change.pk]

        with pytest.raises(RuntimeError, match="roll back"), transaction.atomic():
            record_review(user=reviewer, change=change, outcome="needs-review")
            raise RuntimeError("roll back")
        assert len(heard) == 1 and Review.objects.count() == 1

        response = logged_in(reviewer).post(f"{QUEUE_URL}{change.pk}/review/", {"outcome": "needs-review"})
        assert response.status_code == 302
        assert [r.outcome for r in heard] == ["cleared", "needs-review"]
    finally:
        review_recorded.disconnect(failing)
        review_recorded.disconnect(listening)
    assert "review_recorded receiver" in caplog.text and "broke" in caplog.text


def test_the_demo_user_may_do_each_act():
    from io import StringIO

    from django.core.management import call_command

    call_command("bettorsense_demo_user", stdout=StringIO())
    user = User.objects.get(username="bettorsense-demo")
    for permission in ALL_PERMISSIONS:
        assert user.has_perm(f"bettorsense.{permission}"), permission


def test_an_invalid_review_band_setting_is_reported_on_the_page(synced: Any, reviewer: User, configure: Any):
    configure(REVIEW_BAND="extreme")
    page = logged_in(reviewer).get(QUEUE_URL)
    assert page.status_code == 200
    assert "REVIEW_BAND" in page.content.decode() and "default level, High" in page.content.decode()
    assert page.content.decode().count('class="bs-entry"') == queue.queued(RiskBand.HIGH).count()
