"""The documentation site: it builds in strict mode, and the runbook covers every reason and error."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bettorsense import exceptions
from bettorsense.health.rules import REASONS

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "docs" / "operations.md"
REASON = re.compile(r'Reason\(\s*Status\.\w+,\s*"([a-z][a-z-]*)"')


def reason_codes() -> set[str]:
    sources = (ROOT / "bettorsense" / "health").glob("*.py")
    return {code for path in sources for code in REASON.findall(path.read_text())}


def runbook_anchors() -> set[str]:
    return set(re.findall(r"^### \S+ \{ #([\w-]+) \}$", RUNBOOK.read_text(), flags=re.MULTILINE))


def error_classes() -> set[str]:
    return {
        name
        for name, value in vars(exceptions).items()
        if inspect.isclass(value) and value.__module__ == exceptions.__name__ and issubclass(value, Exception)
    }


def test_every_health_reason_has_a_runbook_entry():
    codes = reason_codes()
    assert len(codes) >= 10  # the pattern still finds the rules
    assert codes - runbook_anchors() == set()


def test_every_listed_reason_has_a_runbook_entry_and_the_list_is_complete():
    assert set(REASONS) - runbook_anchors() == set()
    assert reason_codes() - set(REASONS) == set(), "a rule gives a code that REASONS does not list"


def test_every_error_class_has_a_runbook_entry():
    classes = error_classes()
    assert {"BettorSenseError", "TokenBackoff", "SyncAlreadyRunning"} <= classes
    assert classes - runbook_anchors() == set()


def test_the_site_builds_in_strict_mode(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        pytest.fail(f"{mkdocs} is missing: requirements-dev.txt installs mkdocs-material")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "operations" / "index.html").exists()
    page = (tmp_path / "site" / "integration" / "index.html").read_text()
    assert "INSTALLED_APPS" in page and "8&lt;" not in page  # the README's section, not its marker
