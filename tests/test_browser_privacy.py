"""The access log in headless Chromium: a look at a profile, then "who looked at X" in one search.

Skipped locally without Debian's ``chromium`` and ``chromium-driver``; in CI it fails instead.
The screenshot is saved as ``artifacts/access-log-filtered.png`` (gitignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.privacy.access import record_access
from bettorsense.sync import run_sync
from tests.support.browser import find, log_in, open_browser, screenshot, wait_for

USERNAME, PASSWORD = "rg-auditor", "pw-rg-auditor-1"
PLAYER = "player_42"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    yield from open_browser(tmp_path / "chromium-profile")


@pytest.fixture
def auditor(django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="bettorsense", codename__in=("view_playerriskprofile", "view_accessrecord")
        )
    )
    return user


def test_a_look_at_a_profile_shows_in_the_access_log_filtered_by_account(
    browser, live_server, configure, sandbox, auditor, django_user_model
):
    from selenium.webdriver.common.by import By

    sandbox.state.set_config(players=60)
    run_sync()
    other = django_user_model.objects.create_user("someone-else")
    record_access(user=other, account_id=PLAYER, through="queue", purpose="weekly review")
    record_access(user=other, account_id="player_43", through="profile")
    log_in(browser, live_server.url, USERNAME, PASSWORD)
    profile = StoredProfile.objects.get(account_id=PLAYER)
    browser.get(f"{live_server.url}/admin/bettorsense/playerriskprofile/{profile.pk}/change/")
    assert PLAYER in find(browser, "#content").text
    browser.get(f"{live_server.url}/admin/bettorsense/accessrecord/")
    search = find(browser, "#searchbar")
    search.send_keys(PLAYER)
    find(browser, "#changelist-search [type=submit]").click()
    wait_for(browser, lambda b: "q=" in b.current_url)
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")]
    screenshot(browser, "access-log-filtered.png")
    assert len(rows) == 2, rows
    assert any(USERNAME in row and "Profile page" in row for row in rows)
    assert any("someone-else" in row and "weekly review" in row for row in rows)
    assert all("player_43" not in row for row in rows)
    assert not browser.find_elements(By.CSS_SELECTOR, ".object-tools .addlink")
