"""The Celery task names and the migration state are public: host projects write them down.

A host's beat schedule names the tasks by string, and its database holds our migrations; a rename
on either side breaks deployments silently, so both are pinned here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from celery.beat import ScheduleEntry
from celery.schedules import crontab
from django.core.management import call_command

from project.celery import app

BASE_DIR = Path(__file__).resolve().parent.parent
TASK_NAMES = [
    "bettorsense.tasks.purge_expired",
    "bettorsense.tasks.refresh_token",
    "bettorsense.tasks.sync_risk_profiles",
]

# What a worker does at start-up: set Django up, then import the modules autodiscovery names.
# In a fresh interpreter, so that no test's own import of bettorsense.tasks can register them.
_WORKER_REGISTRY = """
import json, django
django.setup()
from project.celery import app
app.loader.import_default_modules()
print(json.dumps(sorted(name for name in app.tasks if name.startswith("bettorsense"))))
"""


def test_a_worker_of_the_demo_app_registers_exactly_the_documented_task_names() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings"}
    result = subprocess.run(
        [sys.executable, "-c", _WORKER_REGISTRY], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == TASK_NAMES


def readme_beat_schedule() -> dict[str, dict[str, Any]]:
    """The ``CELERY_BEAT_SCHEDULE`` of the README's "Using it in your project", evaluated as written."""
    readme = (BASE_DIR / "README.md").read_text()
    section = readme.split("## Using it in your project", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^CELERY_BEAT_SCHEDULE = \{\n.*?^\}\n", section, flags=re.M | re.S)
    assert match is not None, "the README's setup section no longer shows CELERY_BEAT_SCHEDULE"
    namespace: dict[str, Any] = {"crontab": crontab}
    exec(match.group(0), namespace)  # noqa: S102  (our own README, to test it says what works)
    schedule = namespace["CELERY_BEAT_SCHEDULE"]
    assert isinstance(schedule, dict)
    return schedule


def test_the_readme_beat_schedule_names_registered_tasks() -> None:
    app.loader.import_default_modules()
    schedule = readme_beat_schedule()
    assert sorted(entry["task"] for entry in schedule.values()) == TASK_NAMES
    for name, entry in schedule.items():
        assert entry["task"] in app.tasks, name
        # What beat builds from each entry at start-up; a wrong schedule or option raises here.
        beat_entry = ScheduleEntry(name=name, app=app, **entry)
        assert beat_entry.task == entry["task"]


def test_the_readme_token_entry_ticks_well_inside_the_renewal_window() -> None:
    refresh = readme_beat_schedule()["bettorsense-refresh-token"]
    # 30 s is the renewal window of a 600 s token (README "Configuration": REFRESH_MARGIN).
    assert isinstance(refresh["schedule"], float) and refresh["schedule"] <= 30 / 2
    assert refresh["options"] == {"expires": refresh["schedule"]}


@pytest.mark.django_db
def test_the_models_match_the_migrations() -> None:
    out = StringIO()
    call_command("makemigrations", "bettorsense", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
