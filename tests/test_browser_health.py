"""The health page in headless Chromium, as a member of staff uses it.

Debian's ``chromium`` and ``chromium-driver`` packages, driven by Selenium. Locally, without them,
the test is skipped; in CI (``CI=true`` or ``BETTORSENSE_REQUIRE_SERVICES=1``) it fails instead.
Screenshots are saved under ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
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
from tests.support.sandbox import CLIENT_SECRET

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_REQUIRED = os.environ.get("CI") == "true" or os.environ.get("BETTORSENSE_REQUIRE_SERVICES") == "1"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1500",
)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.")
USERNAME, PASSWORD = "ops-browser", "pw-ops-browser-1"

pytestmark = pytest.mark.django_db(transaction=True)


def _unavailable(reason: str) -> None:
    if BROWSER_REQUIRED:
        pytest.fail(f"{reason} (required in CI: .ci/run installs chromium and chromium-driver)")
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (requirements-dev.txt)")
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        _unavailable(f"{CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="bettorsense", codename__in=("view_health", "run_probe"))
    )
    return user


def wait_for(browser: Any, condition: Any, timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(condition)


def find(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, css)


def badge(browser: Any) -> tuple[str, str]:
    element = find(browser, "#bs-status")
    return element.get_attribute("data-status"), element.text.lower()  # shown upper-case by CSS


def screenshot(browser: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert browser.save_screenshot(str(path)), f"could not save {path}"
    return path


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
