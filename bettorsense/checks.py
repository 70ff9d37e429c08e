"""System checks: ``manage.py check`` says what is wrong with the Bettor Sense set-up, and how to fix it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from bettorsense.conf import get_config, unknown_setting_names
from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.redaction import safe_url

REFRESH_TASK = "bettorsense.tasks.refresh_token"

# Backends whose entries other processes cannot see, or whose add() is not atomic.
_PROCESS_LOCAL_BACKENDS = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}
_NON_ATOMIC_BACKENDS = {"django.core.cache.backends.filebased.FileBasedCache"}


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        config = get_config()
    except BettorSenseConfigurationError as err:
        return [Error(str(err), hint="Fix settings.BETTORSENSE.", id="bettorsense.E002")]
    messages: list[CheckMessage] = []
    if not config.has_credentials:
        messages.append(
            Error(
                "Bettor Sense credentials are missing.",
                hint="Set BETTORSENSE['CLIENT_ID'] and ['CLIENT_SECRET'] (the demo reads BETTORSENSE_CLIENT_ID and "
                "BETTORSENSE_CLIENT_SECRET from the environment). Each environment has its own pair.",
                id="bettorsense.E001",
            )
        )
    for name in unknown_setting_names():
        messages.append(
            Warning(
                f"BETTORSENSE[{name!r}] is not a setting of bettorsense.",
                hint="Check the spelling against the configuration table in the README.",
                id="bettorsense.W004",
            )
        )
    if config.environment != "sandbox" and not config.allow_insecure_urls:
        messages.extend(_check_https(("TOKEN_URL", config.token_url), ("API_URL", config.api_url)))
    messages.extend(_check_cache(config.cache_alias))
    messages.extend(_check_beat(config.refresh_every, config.refresh_margin))
    return messages


def _check_https(*urls: tuple[str, str]) -> list[CheckMessage]:
    """Over plain http the client secret and every bearer token cross the network readable."""
    return [
        Error(
            f"BETTORSENSE[{name!r}] ({safe_url(url)}) is not an https URL.",
            hint="Use the https URL of the vendor. For a local proxy that terminates TLS, set "
            "BETTORSENSE['ALLOW_INSECURE_URLS'] = True; the sandbox environment allows http by itself.",
            id="bettorsense.E004",
        )
        for name, url in urls
        if not url.lower().startswith("https://")
    ]


def _check_cache(alias: str) -> list[CheckMessage]:
    cache_settings = settings.CACHES.get(alias)
    if cache_settings is None:
        return [
            Error(
                f"BETTORSENSE['CACHE_ALIAS'] is {alias!r}, which is not in settings.CACHES.",
                hint="Name a cache that every process of the deployment shares (Redis or the database).",
                id="bettorsense.E003",
            )
        ]
    backend = cache_settings.get("BACKEND", "")
    if backend in _PROCESS_LOCAL_BACKENDS:
        return [
            Warning(
                f"The token cache {alias!r} ({backend}) is not shared between processes.",
                hint="Each process would request its own token, against Sportradar's reuse rule. Use Redis "
                "(django.core.cache.backends.redis.RedisCache) or the database cache.",
                id="bettorsense.W001",
            )
        ]
    if backend in _NON_ATOMIC_BACKENDS:
        return [
            Warning(
                f"The token cache {alias!r} ({backend}) has no atomic add(), so the renewal lock is not single flight.",
                hint="Use Redis or the database cache for BETTORSENSE['CACHE_ALIAS'].",
                id="bettorsense.W002",
            )
        ]
    return []


def _beat_schedule() -> dict[str, Any]:
    schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", None)
    if schedule:
        return dict(schedule)
    try:
        from celery import current_app
    except ImportError:  # pragma: no cover - celery is a dependency
        return {}
    return dict(current_app.conf.beat_schedule or {})


def _check_beat(refresh_every: float, refresh_margin: float) -> list[CheckMessage]:
    entries = [e for e in _beat_schedule().values() if isinstance(e, dict) and e.get("task") == REFRESH_TASK]
    if not entries:
        return [
            Warning(
                f"No Celery beat entry runs {REFRESH_TASK}.",
                hint="Add it to CELERY_BEAT_SCHEDULE (see bettorsense/tasks.py). Without it, requests renew the token "
                "themselves and some of them wait for it. If beat reads a database schedule, silence "
                "bettorsense.W003.",
                id="bettorsense.W003",
            )
        ]
    if refresh_every * 2 > refresh_margin:
        return [
            Warning(
                f"BETTORSENSE['REFRESH_EVERY'] ({refresh_every:g} s) is more than half of REFRESH_MARGIN "
                f"({refresh_margin:g} s): beat may miss the renewal window and leave it to requests.",
                hint="Run the beat entry more often, or widen REFRESH_MARGIN.",
                id="bettorsense.W005",
            )
        ]
    return []
