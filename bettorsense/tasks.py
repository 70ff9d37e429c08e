"""Celery tasks of the app.

Add all three to the host project's beat schedule (the demo's is in project/settings.py)::

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
        "bettorsense-daily-purge": {  # removes what is older than its retention setting
            "task": "bettorsense.tasks.purge_expired",
            "schedule": crontab(hour=5, minute=15),
        },
    }
"""

from __future__ import annotations

import logging

from celery import shared_task

from bettorsense import telemetry, tokens
from bettorsense.conf import DEFAULT_CLIENT, client_names, get_config
from bettorsense.exceptions import BettorSenseConfigurationError

logger = logging.getLogger(__name__)


@shared_task(name="bettorsense.tasks.refresh_token", ignore_result=True)
def refresh_token() -> str:
    """Renew each credential set's token that is inside its renewal window; the others are left alone.

    One run covers every set, one after another; a set whose settings are wrong is logged and
    skipped, so it never holds the others' renewal back. The result is the outcome (``renewed``,
    ``not-due``...) with one set, and ``<set>: <outcome>`` per set, joined by ``; ``, with several.
    """
    names = client_names()
    if names == (DEFAULT_CLIENT,):
        return _refresh_one(DEFAULT_CLIENT)
    return "; ".join(f"{name}: {_refresh_one(name)}" for name in names)


def _refresh_one(client: str) -> str:
    try:
        config = get_config(client)
    except BettorSenseConfigurationError as err:
        logger.warning("Beat token refresh of credential set %s: settings wrong (%s)", client, err)
        return "misconfigured"
    outcome = tokens.get_token_manager(config).refresh_if_due()
    telemetry.record_beat_tick(config, outcome.value)
    if outcome in (tokens.RefreshOutcome.FAILED, tokens.RefreshOutcome.CACHE_UNAVAILABLE):
        logger.warning("Beat token refresh of credential set %s: %s", client, outcome.value)
    else:
        logger.debug("Beat token refresh of credential set %s: %s", client, outcome.value)
    return outcome.value


@shared_task(name="bettorsense.tasks.sync_risk_profiles", ignore_result=True)
def sync_risk_profiles(full: bool = False) -> str:
    """The daily sync into the local store, for each credential set with bookmaker ids, one after another.

    With one set the result is its outcome (``succeeded: ...``, ``refused``); with several, each
    set's as ``<set>: <outcome>`` joined by ``; ``. A named set without bookmaker ids is skipped (the
    ``default`` set without them fails, as it always did). A run refused because another works on the
    same pair is logged and skipped; a set whose run
    fails does not stop the others, and the first such error is raised once all have run.
    """
    from bettorsense.exceptions import SyncAlreadyRunning
    from bettorsense.sync import run_sync

    outcomes: list[tuple[str, str]] = []
    first_error: BaseException | None = None
    for name in client_names():
        try:
            config = get_config(name)
        except BettorSenseConfigurationError as err:
            logger.warning("Sync of credential set %s skipped: settings wrong (%s)", name, err)
            outcomes.append((name, "misconfigured"))
            continue
        if not config.is_default_client and (config.bookmaker_id is None or config.sub_bookmaker_id is None):
            outcomes.append((name, "no bookmaker ids"))
            continue
        try:
            run = run_sync(full=full, client=name)
        except SyncAlreadyRunning:
            logger.info("Sync of credential set %s skipped: another run holds the lock", name)
            outcomes.append((name, "refused"))
            continue
        except Exception as err:  # recorded on its SyncRun; raised once the other sets have run
            first_error = first_error or err
            outcomes.append((name, f"failed ({type(err).__name__})"))
            continue
        outcomes.append((name, f"{run.status}: {run.profiles_seen} profiles, {run.profiles_changed} changed"))
    if first_error is not None:
        raise first_error
    if len(outcomes) == 1:
        return outcomes[0][1]
    return "; ".join(f"{name}: {outcome}" for name, outcome in outcomes)


@shared_task(name="bettorsense.tasks.purge_expired", ignore_result=True)
def purge_expired() -> str:
    """The daily purge of history, reviews and access-log rows past their retention settings."""
    from bettorsense.privacy.retention import purge_expired as purge

    return ", ".join(f"{outcome.table}: {outcome.removed}" for outcome in purge())
