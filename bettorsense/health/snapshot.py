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

from bettorsense import telemetry, tokens
from bettorsense.cache import CacheUnavailable, guard_cache
from bettorsense.checks import _PROCESS_LOCAL_BACKENDS
from bettorsense.client.breaker import get_breaker
from bettorsense.conf import Config, get_config
from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.health.rules import (
    BackoffInfo,
    CacheInfo,
    CheckLevel,
    CheckResult,
    ConfigSummary,
    Snapshot,
    TokenInfo,
)
from bettorsense.redaction import mask, redact_for, safe_url
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
        client_id_masked=mask(config.client_id),
        has_credentials=config.has_credentials,
        bookmaker_id=config.bookmaker_id,
        sub_bookmaker_id=config.sub_bookmaker_id,
        refresh_every=config.refresh_every,
        probe_account_id=config.probe_account_id,
        health_token_set=bool(config.health_token),
    )


def take_snapshot() -> Snapshot:
    """The fleet's state now, as the health rules see it."""
    now = time.time()
    checks = run_app_checks()
    try:
        config = get_config()
    except BettorSenseConfigurationError as err:
        return Snapshot(taken_at=now, config_error=str(err), checks=checks)

    def clean(text: str) -> str:
        # Through the config object: no frame of the snapshot holds a secret, should it raise.
        return redact_for(config, text) if text else text

    backend = str((settings.CACHES.get(config.cache_alias) or {}).get("BACKEND", "(not configured)"))
    fleet: telemetry.TokenState | None = None
    last_call: telemetry.ApiCall | None = None
    backoff: BackoffInfo | None = None
    cache_error: str | None = None
    try:
        with guard_cache():
            fleet = _clean_fleet(telemetry.read_token_state(config), clean)
            last_call = telemetry.read_api_call(config)
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
    )


def _clean_fleet(fleet: telemetry.TokenState, clean: Callable[[str], str]) -> telemetry.TokenState:
    def renewal(value: telemetry.Renewal | None) -> telemetry.Renewal | None:
        if value is None or value.error is None:
            return value
        return replace(value, error=clean(value.error))

    return replace(fleet, last_renewal=renewal(fleet.last_renewal), last_error=renewal(fleet.last_error))
