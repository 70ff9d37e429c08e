"""Headless Chromium for the browser tests (this module holds no tests).

Debian's ``chromium`` and ``chromium-driver`` packages, driven by Selenium. Locally, without them,
a browser test is skipped; in CI (``CI=true`` or ``BETTORSENSE_REQUIRE_SERVICES=1``) it fails instead.
Screenshots are saved under ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
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


def unavailable(reason: str) -> None:
    if BROWSER_REQUIRED:
        pytest.fail(f"{reason} (required in CI: .ci/run installs chromium and chromium-driver)")
    pytest.skip(reason)


def open_browser(profile_dir: Path) -> Iterator[Any]:
    """A headless Chromium, quit afterwards; the body of each test module's ``browser`` fixture."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (requirements-dev.txt)")
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        unavailable(f"{CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(browser: Any, condition: Any, timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(condition)


def find(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, css)


def screenshot(browser: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert browser.save_screenshot(str(path)), f"could not save {path}"
    return path


def log_in(browser: Any, base_url: str, username: str, password: str) -> None:
    """Log in through the admin's own form and wait for the admin index."""
    from selenium.webdriver.common.by import By

    browser.get(f"{base_url}/admin/")
    find(browser, "#id_username").send_keys(username)
    find(browser, "#id_password").send_keys(password)
    find(browser, "#login-form [type=submit]").click()
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#content-main"))
