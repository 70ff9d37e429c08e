"""The review queue in headless Chromium: open it from the admin, record a review, see the player leave;
and a player's score through time, as Chromium lays the chart out.

Headless Chromium from ``tests/support/browser.py``: skipped locally without it, failing in CI.
Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.profiles import RiskBand
from bettorsense.reviews import queue
from bettorsense.reviews.models import Review
from bettorsense.sandbox.profiles import CATEGORY_NAMES
from bettorsense.sync import run_sync
from tests.support.browser import find, log_in, open_browser, screenshot, wait_for

USERNAME, PASSWORD = "rg-reviewer", "pw-rg-reviewer-1"
PERMISSIONS = ("view_playerriskprofile", "view_review", "record_review", "export_reviews", "view_accessrecord")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    yield from open_browser(tmp_path / "chromium-profile")


@pytest.fixture
def reviewer(django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="bettorsense", codename__in=PERMISSIONS)
    )
    return user


def entries(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-account") for row in driver.find_elements(By.CSS_SELECTOR, "#bs-queue .bs-entry")]


def test_staff_record_a_review_from_the_queue_and_the_player_leaves_it(
    browser: Any,
    live_server: Any,
    configure: Any,
    sandbox: Any,
    reviewer: Any,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sandbox.state.set_config(players=600)
    run_sync()
    waiting = queue.queued(RiskBand.HIGH).count()
    assert waiting > 1

    log_in(browser, live_server.url, USERNAME, PASSWORD)
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#content-main .app-bettorsense"))
    find(browser, "#content-main .app-bettorsense").find_element(By.LINK_TEXT, "Review queue").click()
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#bs-queue"))
    assert browser.current_url == f"{live_server.url}/admin/bettorsense/reviewqueue/"
    assert find(browser, "#bs-queue-total").text == str(waiting)
    before = entries(browser)
    assert len(before) == waiting
    oldest = before[0]
    screenshot(browser, "reviews-queue.png")

    find(browser, f'#bs-queue .bs-entry[data-account="{oldest}"] .bs-review').click()
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#bs-review-form"))
    assert find(browser, "#bs-review-account").text == oldest
    find(browser, 'input[name="outcome"][value="intervention"]').click()
    Select(find(browser, "#id_method")).select_by_value("care-call")
    find(browser, "#id_note").send_keys("Called the player; agreed a deposit limit.")
    screenshot(browser, "reviews-form.png")
    find(browser, "#bs-record").click()

    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#bs-queue") and "Review recorded" in b.page_source)
    assert oldest not in entries(browser)
    assert find(browser, "#bs-queue-total").text == str(waiting - 1)
    assert find(browser, ".messagelist").text == f"Review recorded (review {Review.objects.get().pk})."
    review = Review.objects.get()
    assert (review.account_id, review.outcome, review.method) == (oldest, "intervention", "care-call")
    assert review.recorded_by_username == USERNAME
    screenshot(browser, "reviews-after.png")

    browser.get(f"{live_server.url}/admin/bettorsense/review/{review.pk}/change/")
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#bs-correct"))
    assert "Called the player" in find(browser, "#content-main").text
    screenshot(browser, "reviews-record.png")

    # The access log, filtered by the account: the queue, the form and the record's page were each logged.
    browser.get(f"{live_server.url}/admin/bettorsense/accessrecord/?account_id={oldest}")
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#result_list"))
    purposes = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list td.field-purpose")]
    assert sorted(purposes) == ["review form", "review page", "review queue"]  # gone from the queue after
    accounts = {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list .field-account_id")}
    assert accounts == {oldest}
    screenshot(browser, "reviews-access-log.png")


def test_staff_see_a_players_score_through_time(
    browser: Any,
    live_server: Any,
    configure: Any,
    sandbox: Any,
    reviewer: Any,
):
    from selenium.webdriver.common.by import By

    sandbox.state.set_config(players=300)
    run_sync()
    for _ in range(3):
        sandbox.state.advance_day()
        run_sync()
    profile = StoredProfile.objects.filter(changes__previous_score__isnull=False).distinct().first()
    assert profile is not None
    changes = profile.changes.count()
    assert changes >= 2

    log_in(browser, live_server.url, USERNAME, PASSWORD)
    browser.get(f"{live_server.url}/admin/bettorsense/playerriskprofile/{profile.pk}/change/")
    chart = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "figure.bs-score-chart"))[0]
    # Chromium laid the SVG out: one point per recorded change, a legend entry per factor, a real size.
    assert len(chart.find_elements(By.CSS_SELECTOR, "svg circle")) == changes
    legend = [item.text for item in chart.find_elements(By.CSS_SELECTOR, "li") if item.text]
    assert sorted(legend) == sorted(CATEGORY_NAMES.values())
    svg = chart.find_element(By.CSS_SELECTOR, ":scope > svg")
    assert svg.size["width"] > 200 and svg.size["height"] > 100
    assert chart.size["width"] <= 720  # within its column, so the field's label keeps its room
    swatches = chart.find_elements(By.CSS_SELECTOR, "li svg")
    assert swatches and all(swatch.size["width"] <= 20 for swatch in swatches)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});", chart)
    screenshot(browser, "profile-score-chart.png")
    # The look at that page is in the access log.
    browser.get(f"{live_server.url}/admin/bettorsense/accessrecord/?account_id={profile.account_id}")
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#result_list"))
    assert "Profile page" in find(browser, "#result_list").text
