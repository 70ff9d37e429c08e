"""Celery tasks of the app.

Add the token renewal to the host project's beat schedule (the demo's is in project/settings.py)::

    CELERY_BEAT_SCHEDULE = {
        "bettorsense-refresh-token": {
            "task": "bettorsense.tasks.refresh_token",
            "schedule": 10.0,  # keep it well under the renewal window (30 s for a 600 s token)
            "options": {"expires": 10.0},
        },
    }
"""

from __future__ import annotations

import logging

from celery import shared_task

from . import state, tokens
from .conf import get_config

logger = logging.getLogger(__name__)


@shared_task(name="bettorsense.tasks.refresh_token", ignore_result=True)
def refresh_token() -> str:
    """Renew the fleet's token if it is inside its renewal window; otherwise do nothing."""
    config = get_config()
    outcome = tokens.get_token_manager(config).refresh_if_due()
    state.record_beat_tick(config, outcome.value)
    if outcome in (tokens.RefreshOutcome.FAILED, tokens.RefreshOutcome.CACHE_UNAVAILABLE):
        logger.warning("Beat token refresh: %s", outcome.value)
    else:
        logger.debug("Beat token refresh: %s", outcome.value)
    return outcome.value
