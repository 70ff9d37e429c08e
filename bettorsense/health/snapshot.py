"""Gather a :class:`~bettorsense.health.Snapshot`: what the fleet recorded in the shared cache.

A handful of cache reads and the ``bettorsense`` system checks; no request to Sportradar. Every
read that fails leaves its part of the snapshot empty instead of raising. Free text that came from
elsewhere (error messages) is redacted again here, so a snapshot holds no secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from django.conf import settings
from django.core.checks import CRITICAL, ERROR, INFO, WARNING, CheckMessage
from django.core.checks.registry import registry
from django.db import DatabaseError
from django.db.models import F

from bettorsense import beat, telemetry, tokens
from bettorsense.cache import CacheUnavailable, confirm_round_trip, guard_cache
from bettorsense.checks import _PROCESS_LOCAL_BACKENDS
from bettorsense.client.breaker import get_breaker
from bettorsense.conf import DEFAULT_CLIENT, Config, get_config
from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.health.rules import (
    BackoffInfo,
    CacheInfo,
    CheckLevel,
    CheckResult,
    ConfigSummary,
    ScheduleInfo,
    Snapshot,
    SyncInfo,
    TokenInfo,
)
from bettorsense.redaction import fingerprint, redact_for, safe_url
from bettorsense.tokens.manager import TokenTiming
from bettorsense.tokens.shared import SharedTokenCache

logger = logging.getLogger(__name__)

_LEVELS = {CRITICAL: CheckLevel.CRITICAL, ERROR: CheckLevel.ERROR, WARNING: CheckLevel.WARNING, INFO: CheckLevel.INFO}


def run_app_checks() -> tuple[CheckResult, ...]:
    """The registered system checks of this app, less those silenced in settings."""
    silenced = set(getattr(settings, "SILENCED_SYSTEM_CHECKS", ()))
    messages: list[CheckMessage] = []
    for check in registry.get_checks():
        if getattr(check, "__module__", "").startswith("bettorsense."):
            messages.extend(check(app_configs=None, databases=None))
    return tuple(
        CheckResult(
            level=_LEVELS.get(message.level, CheckLevel.ERROR if message.is_serious() else CheckLevel.INFO),
            id=str(message.id or ""),
            message=str(message.msg),
            hint=str(message.hint or ""),
        )
        for message in messages
        if message.id not in silenced
    )


def _summary(config: Config) -> ConfigSummary:
    return ConfigSummary(
        environment=config.environment,
        token_url=safe_url(config.token_url),
        audience=config.audience,
        api_url=safe_url(config.api_url),
        client_id=config.client_id,
        client_secret_fingerprint=fingerprint(config.client_secret),
        has_credentials=config.has_credentials,
        bookmaker_id=config.bookmaker_id,
        sub_bookmaker_id=config.sub_bookmaker_id,
        refresh_margin=config.refresh_margin,
        sync_stale_after=config.sync_stale_after,
        probe_account_id=config.probe_account_id,
        health_token_set=bool(config.health_token),
        clock_skew_warn=config.clock_skew_warn,
    )


def read_schedule() -> ScheduleInfo:
    """The renewal interval and whether a sync is scheduled, from the Celery beat schedule."""
    return ScheduleInfo(refresh_every=beat.refresh_interval(), sync_scheduled=beat.sync_scheduled())


def read_sync(clean: Callable[[str], str], client: str = DEFAULT_CLIENT) -> SyncInfo | None:
    """The set's last finished sync run and last success; None when the database cannot be read."""
    from bettorsense.models import SyncRun

    try:
        runs = SyncRun.objects.filter(client=client)
        first = runs.order_by("started_at", "id").first()
        finished = runs.exclude(status=SyncRun.Status.RUNNING)
        newest = (F("finished_at").desc(nulls_last=True), F("id").desc())
        last = finished.order_by(*newest).first()
        success = finished.filter(status=SyncRun.Status.SUCCEEDED).order_by(*newest).first()
    except DatabaseError as err:
        logger.warning("Health snapshot: sync runs unreadable (%s)", type(err).__name__)
        return None
    failed = last is not None and last.status == SyncRun.Status.FAILED
    return SyncInfo(
        first_started_at=first.started_at.timestamp() if first is not None else None,
        last_success_at=success.finished_at.timestamp() if success and success.finished_at else None,
        last_finished_at=last.finished_at.timestamp() if last and last.finished_at else None,
        last_finished_failed=failed,
        last_error=clean(last.error) if last is not None and failed else "",
    )


def take_snapshot(client: str = DEFAULT_CLIENT, *, checks: tuple[CheckResult, ...] | None = None) -> Snapshot:
    """The fleet's state now for the credential set ``client``, as the health rules see it.

    ``checks``: the system checks' results, when the caller ran them already (once for every set).
    """
    now = time.time()
    if checks is None:
        checks = run_app_checks()
    try:
        config = get_config(client)
    except BettorSenseConfigurationError as err:
        return Snapshot(taken_at=now, config_error=str(err), checks=checks, client=client)
    now = telemetry.server_now(config)  # what the fleet recorded is on the token server's clock

    def clean(text: str) -> str:
        # Through the config object: no frame of the snapshot holds a secret, should it raise.
        return redact_for(config, text) if text else text

    backend = str((settings.CACHES.get(config.cache_alias) or {}).get("BACKEND", "(not configured)"))
    fleet: telemetry.TokenState | None = None
    last_call: telemetry.ApiCall | None = None
    backoff: BackoffInfo | None = None
    cache_error: str | None = None
    clocks: tuple[telemetry.ProcessClock, ...] = ()
    try:
        with guard_cache():
            confirm_round_trip(config)
            fleet = _clean_fleet(telemetry.read_token_state(config), clean)
            last_call = telemetry.read_api_call(config)
            clocks = tuple(telemetry.read_process_clocks(config, since=now - _clock_report_age(config)))
            found = SharedTokenCache(config).read_backoff()
        if found is not None:
            backoff = BackoffInfo(until=found.until, error=found.error, message=clean(found.message))
    except CacheUnavailable as err:
        cache_error = clean(str(err))
        logger.warning("Health snapshot: cache %r unavailable (%s)", config.cache_alias, cache_error)
    token = tokens.get_token_manager(config).peek()  # the process's own token if the cache is down
    return Snapshot(
        taken_at=now,
        config=_summary(config),
        cache=CacheInfo(
            alias=config.cache_alias,
            backend=backend,
            shared=backend not in _PROCESS_LOCAL_BACKENDS,
            reachable=cache_error is None,
            error=cache_error,
        ),
        token=None
        if token is None
        else TokenInfo(
            fingerprint=token.fingerprint,
            issued_at=token.issued_at,
            expires_at=token.expires_at,
            usable_until=TokenTiming.of(token, config).usable_until,
        ),
        backoff=backoff,
        fleet=fleet,
        breaker=get_breaker(config).state() if cache_error is None else None,
        last_api_call=last_call,
        checks=tuple(CheckResult(c.level, c.id, clean(c.message), clean(c.hint)) for c in checks),
        schedule=read_schedule(),
        sync=read_sync(clean, config.client),
        clocks=clocks,
        client=config.client,
    )


def _clock_report_age(config: Config) -> float:
    """A process's clock measurement is shown this long: it measures again every CLOCK_PROBE_EVERY."""
    return max(2 * config.clock_probe_every, 3600.0)


def _clean_fleet(fleet: telemetry.TokenState, clean: Callable[[str], str]) -> telemetry.TokenState:
    def renewal(value: telemetry.Renewal | None) -> telemetry.Renewal | None:
        if value is None or value.error is None:
            return value
        return replace(value, error=clean(value.error))

    return replace(fleet, last_renewal=renewal(fleet.last_renewal), last_error=renewal(fleet.last_error))
