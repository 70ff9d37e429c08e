"""``make demo`` as a newcomer meets it: the real command, its printed user, a browser, a clean stop.

Not ``live_server``: pytest-django's server serves static files itself, so it cannot show that the
demo's admin has its stylesheet. This test starts ``make demo`` on two free ports and its own SQLite
file and broker folder, reads the user it prints, opens the admin, health, a profile and the sync
runs in headless Chromium (screenshots in ``artifacts/``), then stops the demo as Ctrl-C would and
reads its logs.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.ports import free_port
from tests.support.browser import ROOT, find, log_in, open_browser, screenshot, wait_for

pytestmark = pytest.mark.celery  # real processes: one xdist group with the other such tests
RUN = ROOT / ".run"
LOGS = ("sandbox", "worker", "beat", "web", "sync")
STARTUP_DEADLINE = 120.0


def log_sizes() -> dict[str, int]:
    return {name: (RUN / f"{name}.log").stat().st_size if (RUN / f"{name}.log").exists() else 0 for name in LOGS}


def new_log_text(name: str, before: dict[str, int]) -> str:
    path = RUN / f"{name}.log"
    with path.open("rb") as log:
        log.seek(before[name])
        return log.read().decode(errors="replace")


class Demo:
    def __init__(self, tmp_path: Path) -> None:
        self.web_port, self.sandbox_port = free_port(), free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith(("BETTORSENSE_", "CELERY_"))}
        for name in ("DATABASE_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE"):
            env.pop(name, None)
        # The embedded defaults, in this test's own folder rather than the checkout's demo database.
        env.update(
            WEB_PORT=str(self.web_port),
            SANDBOX_PORT=str(self.sandbox_port),
            DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
            CELERY_BROKER_DIR=str(tmp_path / "broker"),
        )
        self.logs_before = log_sizes()
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "demo"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output: list[str] = []
        self.username, self.password = self._read_until_running()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _read_until_running(self) -> tuple[str, str]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + STARTUP_DEADLINE
        username = password = ""
        for line in self.process.stdout:
            self.output.append(line)
            if match := re.match(r"\s+username: (\S+)", line):
                username = match.group(1)
            if match := re.match(r"\s+password: (\S+)", line):
                password = match.group(1)
            if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
                break
        assert "Press Ctrl-C to stop." in "".join(self.output), "".join(self.output)
        assert username and password, "".join(self.output)
        return username, password

    def stop(self) -> int:
        """SIGTERM to ``scripts/demo.py`` (make's child), as Ctrl-C in a terminal would stop it."""
        if self.process.poll() is None:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            for child in children:
                os.kill(int(child), signal.SIGTERM)
            try:
                out, _ = self.process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                out, _ = self.process.communicate()
            self.output.append(out)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.stop()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    started = Demo(tmp_path)
    try:
        yield started
    finally:
        started.kill()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    yield from open_browser(tmp_path / "chromium-profile")


TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}")


def record_key(line: str) -> tuple[str, str]:
    """A log record as its millisecond and its message's end: one record printed in two formats
    (Django's handler and Celery's) gives the same key twice in a row."""
    match = TIMESTAMP.search(line)
    assert match is not None
    return match.group(0), line.rstrip()[-40:]


def stylesheet_rules(browser: Any, suffix: str) -> int:
    """How many rules the browser parsed from the loaded stylesheet whose URL ends with ``suffix``."""
    return int(
        browser.execute_script(
            "const s = [...document.styleSheets].find(s => s.href && s.href.endsWith(arguments[0]));"
            "return s ? s.cssRules.length : -1;",
            suffix,
        )
    )


def test_make_demo_in_a_browser_then_a_clean_stop(browser, demo):
    from selenium.webdriver.common.by import By

    assert "first sync: done" in "".join(demo.output)
    assert requests.get(f"{demo.url}/static/admin/css/base.css", timeout=10).status_code == 200

    # The admin is styled: Chromium loaded and parsed the admin's stylesheet.
    browser.get(f"{demo.url}/admin/login/")
    assert stylesheet_rules(browser, "/static/admin/css/base.css") > 50
    assert find(browser, "#header").value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"
    log_in(browser, demo.url, demo.username, demo.password)
    section = find(browser, "#content-main .app-bettorsense")
    links = {link.text for link in section.find_elements(By.CSS_SELECTOR, "th a")}
    assert {"Health", "Player risk profiles", "Sync runs"} <= links, links
    screenshot(browser, "demo-admin.png")

    # Health: the printed user may open it and sees a status.
    section.find_element(By.LINK_TEXT, "Health").click()
    status = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#bs-status"))[0]
    assert status.get_attribute("data-status") in {"ok", "degraded"}
    assert "sha256:" in find(browser, "#bs-token").text
    screenshot(browser, "demo-health.png")

    # The store has the first sync's profiles; one opens.
    browser.get(f"{demo.url}/admin/bettorsense/playerriskprofile/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) > 10
    rows[0].find_element(By.CSS_SELECTOR, "th a").click()
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#content h2, #content-main fieldset"))
    assert "player_" in find(browser, "#content").text
    screenshot(browser, "demo-profile.png")

    # The sync runs: the first sync succeeded.
    browser.get(f"{demo.url}/admin/bettorsense/syncrun/")
    assert "Succeeded" in find(browser, "#result_list").text
    screenshot(browser, "demo-sync-runs.png")

    # A clean stop: exit 0, no error in any log, no line printed twice in a row.
    assert demo.stop() == 0, "".join(demo.output)
    assert "A demo process exited" not in "".join(demo.output)
    for name in LOGS:
        text = new_log_text(name, demo.logs_before)
        assert "ERROR" not in text and "Traceback" not in text, f"{name}.log:\n{text}"
        records = [record_key(line) for line in text.splitlines() if TIMESTAMP.search(line)]
        doubled = [a for a, b in itertools.pairwise(records) if a == b]
        assert not doubled, f"{name}.log prints records twice: {doubled[:3]}"
    assert not re.search(r'"GET /static/\S+ HTTP/1\.1" 404', new_log_text("web", demo.logs_before))
