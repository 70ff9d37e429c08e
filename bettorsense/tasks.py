"""Celery tasks of the app.

Add both to the host project's beat schedule (the demo's is in project/settings.py)::

    from celery.schedules import crontab

    CELERY_BEAT_SCHEDULE = {
        "bettorsense-refresh-token": {
            "task": "bettorsense.tasks.refresh_token",
            "schedule": 10.0,  # keep it well under the renewal window (30 s for a 600 s token)
            "options": {"expires": 10.0},
        },
        "bettorsense-daily-sync": {  # after the vendor's nightly recompute, done by about 04:00 UTC
            "task": "bettorsense.tasks.sync_risk_profiles",
            "schedule": crontab(hour=4, minute=30),
        },
    }
"""

from __future__ import annotations

import logging

from celery import shared_task

from bettorsense import telemetry, tokens
from bettorsense.conf import get_config

logger = logging.getLogger(__name__)


@shared_task(name="bettorsense.tasks.refresh_token", ignore_result=True)
def refresh_token() -> str:
    """Renew the fleet's token if it is inside its renewal window; otherwise do nothing."""
    config = get_config()
    outcome = tokens.get_token_manager(config).refresh_if_due()
    telemetry.record_beat_tick(config, outcome.value)
    if outcome in (tokens.RefreshOutcome.FAILED, tokens.RefreshOutcome.CACHE_UNAVAILABLE):
        logger.warning("Beat token refresh: %s", outcome.value)
    else:
        logger.debug("Beat token refresh: %s", outcome.value)
    return outcome.value


@shared_task(name="bettorsense.tasks.sync_risk_profiles", ignore_result=True)
def sync_risk_profiles(full: bool = False) -> str:
    """The daily sync into the local store; a second run while one works is refused and logged."""
    from bettorsense.exceptions import SyncAlreadyRunning
    from bettorsense.sync import run_sync

    try:
        run = run_sync(full=full)
    except SyncAlreadyRunning:
        logger.info("Sync skipped: another run holds the lock")
        return "refused"
    return f"{run.status}: {run.profiles_seen} profiles, {run.profiles_changed} changed"
