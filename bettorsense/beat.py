"""The host project's Celery beat schedule, as the checks and the health page read it.

The schedule lives in two places a Django project may use: ``settings.CELERY_BEAT_SCHEDULE`` and
the ``beat_schedule`` of its Celery app. The app is found the way Celery's Django integration
finds it: the ``celery_app`` that Celery's Django guide has the project package (the package of
the settings module) export, else :data:`celery.current_app`. An entry of the app wins over a
setting of the same name, as it does for beat.

Each entry's schedule is read, never trusted: a number of seconds, a ``timedelta`` or a
``celery.schedules.schedule`` has an interval; a ``crontab`` (or any other schedule) has none
that is fixed; anything else is unreadable.
"""

from __future__ import annotations

import enum
import importlib
import logging
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from django.conf import settings

logger = logging.getLogger(__name__)

#: The task names a host's schedule uses (pinned by tests/test_task_names.py).
REFRESH_TASK: Final = "bettorsense.tasks.refresh_token"
SYNC_TASK: Final = "bettorsense.tasks.sync_risk_profiles"


class Timing(enum.StrEnum):
    INTERVAL = "interval"  # runs every ``every`` seconds
    CALENDAR = "calendar"  # a crontab or solar schedule: no fixed interval
    UNREADABLE = "unreadable"  # not a schedule beat can run


@dataclass(frozen=True)
class BeatEntry:
    name: str
    task: str
    timing: Timing
    every: float | None  # seconds between runs, for an INTERVAL
    schedule: str  # what was given, for messages


def _project_app() -> Any:
    """The project package's ``celery_app``, as Celery's Django guide writes it, if it has one."""
    # Overridden settings (override_settings) hide SETTINGS_MODULE; Celery's Django fixup reads the
    # environment variable too.
    module_name = str(getattr(settings, "SETTINGS_MODULE", None) or os.environ.get("DJANGO_SETTINGS_MODULE") or "")
    package_name = module_name.rpartition(".")[0]
    if not package_name:
        return None
    package = sys.modules.get(package_name)
    if package is None:
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            return None
    return getattr(package, "celery_app", None)


def celery_app() -> Any:
    """The project's Celery app: its package's ``celery_app``, else Celery's current app."""
    app = _project_app()
    if app is not None:
        return app
    from celery import current_app

    return current_app._get_current_object()


def _timing(value: Any) -> tuple[Timing, float | None]:
    from celery.schedules import BaseSchedule, schedule

    seconds: float | None = None
    if isinstance(value, bool):
        return Timing.UNREADABLE, None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, schedule) and isinstance(getattr(value, "run_every", None), timedelta):
        seconds = value.run_every.total_seconds()
    elif isinstance(value, BaseSchedule):
        return Timing.CALENDAR, None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return Timing.UNREADABLE, None
    return Timing.INTERVAL, seconds


def _described(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _entries(schedule: Any) -> dict[str, BeatEntry]:
    if not isinstance(schedule, Mapping):
        return {}
    found: dict[str, BeatEntry] = {}
    for name, entry in schedule.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("task"), str):
            continue
        timing, every = _timing(entry.get("schedule"))
        found[str(name)] = BeatEntry(str(name), entry["task"], timing, every, _described(entry.get("schedule")))
    return found


def beat_entries() -> tuple[BeatEntry, ...]:
    """Every entry of ``CELERY_BEAT_SCHEDULE`` and of the Celery app's ``beat_schedule``."""
    entries = _entries(getattr(settings, "CELERY_BEAT_SCHEDULE", None))
    entries.update(_entries(_app_schedule()))
    return tuple(entries.values())


def _app_schedule() -> Any:
    """The app's ``beat_schedule``; None when the app's configuration cannot be loaded."""
    try:
        return celery_app().conf.beat_schedule
    except (ImportError, AttributeError) as err:  # a config module that is missing, a celery_app that is no app
        logger.warning(
            "Celery app's beat_schedule unreadable (%s): only CELERY_BEAT_SCHEDULE is read", type(err).__name__
        )
        return None


def entries_for(task: str) -> tuple[BeatEntry, ...]:
    return tuple(entry for entry in beat_entries() if entry.task == task)


def refresh_interval() -> float | None:
    """Seconds between two runs of the renewal task: its most frequent entry; None if not fixed."""
    intervals = [entry.every for entry in entries_for(REFRESH_TASK) if entry.every is not None]
    return min(intervals) if intervals else None


def sync_scheduled() -> bool:
    return any(entry.timing is not Timing.UNREADABLE for entry in entries_for(SYNC_TASK))
