"""The health page in headless Chromium, as a member of staff uses it.

Debian's ``chromium`` and ``chromium-driver`` packages, driven by Selenium. Locally, without them,
the test is skipped; in CI (``CI=true`` or ``BETTORSENSE_REQUIRE_SERVICES=1``) it fails instead.
Screenshots are saved under ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import caches

from bettorsense import tokens
from bettorsense.conf import get_config
from bettorsense.health import probe
from bettorsense.sandbox import Fault
from tests.support import health_states
from tests.support.browser import find, open_browser, screenshot, wait_for
from tests.support.sandbox import CLIENT_SECRET

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.")
USERNAME, PASSWORD = "ops-browser", "pw-ops-browser-1"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    yield from open_browser(tmp_path / "chromium-profile")


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="bettorsense", codename__in=("view_health", "run_probe"))
    )
    return user


def badge(browser: Any) -> tuple[str, str]:
    element = find(browser, "#bs-status")
    return element.get_attribute("data-status"), element.text.lower()  # shown upper-case by CSS


def assert_no_secret(browser: Any, token_values: set[str]) -> None:
    source = browser.page_source
    assert CLIENT_SECRET not in source
    for value in token_values:
        assert value not in source
    assert not JWT.search(source)


def check_now(browser: Any) -> Any:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    # Mark this document; the POST and its redirect load a new one without the mark. (Waiting for
    # the button to go stale can race the navigation inside Chromium's inspector.)
    browser.execute_script("window.bsBeforeCheck = true;")
    find(browser, "#bs-check-now").click()
    WebDriverWait(browser, 20, ignored_exceptions=[WebDriverException]).until(
        lambda b: b.execute_script("return window.bsBeforeCheck === undefined && document.readyState === 'complete';")
    )
    return find(browser, "#bs-probe-result")


def test_staff_opens_the_page_from_the_admin_and_sees_health_change(
    browser, live_server, configure, sandbox, settings, staff
):
    from selenium.webdriver.common.by import By

    health_states.healthy(configure, sandbox, settings)

    # Log in to the admin, then open the page from the index, under "Bettor Sense".
    browser.get(f"{live_server.url}/admin/")
    find(browser, "#id_username").send_keys(USERNAME)
    find(browser, "#id_password").send_keys(PASSWORD)
    find(browser, "#login-form [type=submit]").click()
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#content-main .app-bettorsense"))
    section = find(browser, "#content-main .app-bettorsense")
    assert "bettor sense" in section.text.lower()
    section.find_element(By.LINK_TEXT, "Health").click()
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#bs-status"))
    assert browser.current_url == f"{live_server.url}/admin/bettorsense/health/"
    assert re.fullmatch(r"home \W bettor sense \W health", find(browser, ".breadcrumbs").text.lower())

    # Healthy.
    assert badge(browser) == ("ok", "ok")
    assert "Everything is working" in find(browser, "#bs-reasons").text
    for section_id in ("bs-configuration", "bs-token", "bs-beat", "bs-service", "bs-probe"):
        assert find(browser, f"#{section_id}").is_displayed()
    assert "sha256:" in find(browser, "#bs-token").text
    countdown = find(browser, "#bs-expires-in")
    first = countdown.text
    wait_for(browser, lambda _: countdown.text != first)  # the countdown runs in the page
    assert re.fullmatch(r"\d+ min \d\d s", countdown.text)
    result = check_now(browser)
    assert result.get_attribute("data-ok") == "true"
    assert "The API answered 200 for 'player_1'." in result.text
    assert re.search(r"\d+(\.\d)? ms", result.text)
    assert_no_secret(browser, health_states.cached_token_values())
    screenshot(browser, "health-ok.png")

    # Broken: the token endpoint answers 503 and the fleet has no valid token left.
    token_values = health_states.cached_token_values()
    sandbox.state.add_fault(Fault(target="token", kind="status", status=503))
    for value in token_values:
        tokens.invalidate(value)
    health_states.beat_runs()  # beat tries to renew, and fails
    # The fleet-wide probe throttle would show the first check's result again: end its interval.
    caches[get_config().cache_alias].delete(probe.throttle_key(get_config()))
    browser.get(f"{live_server.url}/admin/bettorsense/health/")
    assert badge(browser) == ("down", "down")
    reasons = find(browser, "#bs-reasons").text
    assert "No usable token, and the token endpoint is failing" in reasons
    assert "absent" in find(browser, "#bs-token").text
    result = check_now(browser)
    assert result.get_attribute("data-ok") == "false"
    assert re.search(r"Token(ServerError|Backoff)", result.text)
    assert badge(browser)[0] == "down"
    assert_no_secret(browser, token_values | health_states.cached_token_values())
    screenshot(browser, "health-down.png")

    # A narrow screen: one column, nothing wider than the viewport.
    browser.set_window_size(390, 1600)
    browser.get(f"{live_server.url}/admin/bettorsense/health/")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
    )
    assert overflow <= 1
    configuration, token = find(browser, "#bs-configuration"), find(browser, "#bs-token")
    assert token.location["y"] > configuration.location["y"]  # stacked, not side by side
    screenshot(browser, "health-narrow.png")
