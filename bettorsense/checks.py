"""System checks: ``manage.py check`` says what is wrong with the Bettor Sense set-up, and how to fix it."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Warning, register

from bettorsense import beat
from bettorsense.beat import REFRESH_TASK, Timing
from bettorsense.conf import (
    DEPRECATED_SETTINGS,
    Config,
    client_names,
    get_config,
    unknown_client_setting_names,
    unknown_setting_names,
)
from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.redaction import safe_url

# The Python packages each Redis cache backend imports when it first connects.
_REDIS_CLIENTS = {
    "django.core.cache.backends.redis.RedisCache": ("redis",),
    "django_redis.cache.RedisCache": ("django_redis", "redis"),
}

# Backends whose entries other processes cannot see, or whose add() is not atomic.
_PROCESS_LOCAL_BACKENDS = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}
_NON_ATOMIC_BACKENDS = {"django.core.cache.backends.filebased.FileBasedCache"}


def settings_path(config: Config) -> str:
    """Where a credential set's own settings are written: ``BETTORSENSE`` or its ``CLIENTS`` entry."""
    return "BETTORSENSE" if config.is_default_client else f"BETTORSENSE['CLIENTS'][{config.client!r}]"


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Each credential set's settings, then what the whole fleet shares (caches, beat)."""
    try:
        names = client_names()
    except BettorSenseConfigurationError as err:
        return [Error(str(err), hint="Fix settings.BETTORSENSE['CLIENTS'].", id="bettorsense.E002")]
    messages: list[CheckMessage] = []
    configs: list[Config] = []
    for name in names:
        try:
            configs.append(get_config(name))
        except BettorSenseConfigurationError as err:
            messages.append(Error(str(err), hint="Fix settings.BETTORSENSE.", id="bettorsense.E002"))
    for config in configs:
        if not config.has_credentials:
            messages.append(_missing_credentials(config))
    messages.extend(_check_deprecated_settings())
    for name in unknown_setting_names():
        messages.append(
            Warning(
                f"BETTORSENSE[{name!r}] is not a setting of bettorsense.",
                hint="Check the spelling against the configuration table in the README.",
                id="bettorsense.W004",
            )
        )
    for client, name in unknown_client_setting_names():
        messages.append(
            Warning(
                f"BETTORSENSE['CLIENTS'][{client!r}][{name!r}] is not a setting of bettorsense.",
                hint="Check the spelling against the configuration table in the README.",
                id="bettorsense.W004",
            )
        )
    for config in configs:
        if config.environment != "sandbox" and not config.allow_insecure_urls:
            messages.extend(
                _check_https(settings_path(config), ("TOKEN_URL", config.token_url), ("API_URL", config.api_url))
            )
    messages.extend(_check_shared_credentials(configs))
    default = next((config for config in configs if config.is_default_client), None)
    if default is None:
        return messages
    messages.extend(_check_cache(default.cache_alias))
    messages.extend(_check_redis_client(default.cache_alias))
    messages.extend(_check_beat(min(config.refresh_margin for config in configs)))
    if default.metrics_default_registry and not _importable("prometheus_client"):
        messages.append(
            Warning(
                "BETTORSENSE['METRICS_DEFAULT_REGISTRY'] is on, but prometheus_client is not installed.",
                hint='Install the extra (pip install "bettorsense[prometheus]") or turn the setting off.',
                id="bettorsense.W013",
            )
        )
    return messages


def _missing_credentials(config: Config) -> CheckMessage:
    where = settings_path(config)
    named = "" if config.is_default_client else f" of credential set {config.client!r}"
    return Error(
        f"Bettor Sense credentials{named} are missing.",
        hint=f"Set {where}['CLIENT_ID'] and {where}['CLIENT_SECRET'] to the pair Sportradar issued "
        "for BETTORSENSE['ENVIRONMENT'] (integration and production each have their own), read from "
        "your secret store or environment rather than written in settings.py.",
        id="bettorsense.E001",
    )


def _check_shared_credentials(configs: list[Config]) -> list[CheckMessage]:
    """Two sets with one client id would each hold a token of that client: the reuse rule forbids it."""
    by_identity: dict[str, list[str]] = {}
    for config in configs:
        if config.has_credentials:
            by_identity.setdefault(config.credentials_identity, []).append(config.client)
    return [
        Error(
            f"Credential sets {', '.join(repr(name) for name in names)} use the same client id, token URL "
            "and audience.",
            hint="Each set keeps a token of its own, so two sets of one client would hold two tokens at "
            "once, which Sportradar's reuse rule refuses. Give each brand its own credentials, or name "
            "its bookmaker ids per call (bookmaker_id=, sub_bookmaker_id=) with one set.",
            id="bettorsense.E010",
        )
        for names in by_identity.values()
        if len(names) > 1
    ]


def _check_deprecated_settings() -> list[CheckMessage]:
    given = getattr(settings, "BETTORSENSE", None)
    names = sorted(set(given) & set(DEPRECATED_SETTINGS)) if isinstance(given, dict) else []
    return [
        Warning(
            f"BETTORSENSE[{name!r}] is no longer read.",
            hint=f"{DEPRECATED_SETTINGS[name]} Remove it from settings.BETTORSENSE.",
            id="bettorsense.W011",
        )
        for name in names
    ]


def _importable(package: str) -> bool:
    try:
        importlib.import_module(package)
    except ImportError:
        return False
    return True


def _check_redis_client(*aliases: str) -> list[CheckMessage]:
    """A Redis cache whose client package is missing fails on first use, and the token falls back per process."""
    messages: list[CheckMessage] = []
    for alias in dict.fromkeys(aliases):
        backend = str((settings.CACHES.get(alias) or {}).get("BACKEND", ""))
        missing = [package for package in _REDIS_CLIENTS.get(backend, ()) if not _importable(package)]
        if missing:
            names = " and ".join(repr(package) for package in missing)
            messages.append(
                Error(
                    f"The cache {alias!r} uses {backend}, but {names} cannot be imported.",
                    hint="Install the Redis client with the app: pip install 'bettorsense[redis]' (or pip install "
                    f"{' '.join(package.replace('_', '-') for package in missing)}). Until then every cache call "
                    "fails and each process falls back to a token of its own.",
                    id="bettorsense.E005",
                )
            )
    return messages


def _check_https(where: str, *urls: tuple[str, str]) -> list[CheckMessage]:
    """Over plain http the client secret and every bearer token cross the network readable."""
    return [
        Error(
            f"{where}[{name!r}] ({safe_url(url)}) is not an https URL.",
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


def _check_beat(refresh_margin: float) -> list[CheckMessage]:
    """The renewal task must run at least twice in every renewal window, or requests renew the token."""
    entries = beat.entries_for(REFRESH_TASK)
    if not entries:
        return [
            Warning(
                f"No Celery beat entry runs {REFRESH_TASK}.",
                hint="Add it to CELERY_BEAT_SCHEDULE (or your Celery app's beat_schedule) as the README's "
                '"Using it in your project" shows. Without it, requests renew the token themselves and some '
                "of them wait for it. If beat reads its schedule from a database (django-celery-beat), add the "
                "entry there and silence bettorsense.W003.",
                id="bettorsense.W003",
            )
        ]
    interval = min((e.every for e in entries if e.every is not None), default=None)
    if interval is not None:
        if interval * 2 <= refresh_margin:
            return []
        return [
            Warning(
                f"Celery beat runs {REFRESH_TASK} every {interval:g} s, more than half of the renewal window "
                f"(REFRESH_MARGIN, {refresh_margin:g} s): beat may miss the window and leave renewals to requests.",
                hint=f"Give the beat entry a schedule of at most {refresh_margin / 2:g} seconds, or widen "
                "BETTORSENSE['REFRESH_MARGIN'].",
                id="bettorsense.W005",
            )
        ]
    calendar = [e for e in entries if e.timing is Timing.CALENDAR]
    if calendar:
        entry = calendar[0]
        return [
            Warning(
                f"The beat entry {entry.name!r} runs {REFRESH_TASK} on a calendar schedule ({entry.schedule}): "
                f"a crontab runs at most once a minute, too coarse for a renewal window of {refresh_margin:g} s.",
                hint=f"Use a number of seconds (at most {refresh_margin / 2:g}), a timedelta or "
                "celery.schedules.schedule for this entry.",
                id="bettorsense.W010",
            )
        ]
    entry = entries[0]
    return [
        Warning(
            f"The beat entry {entry.name!r} for {REFRESH_TASK} has a schedule beat cannot run: {entry.schedule}.",
            hint=f"Use a positive number of seconds (at most {refresh_margin / 2:g}), a timedelta or "
            "celery.schedules.schedule.",
            id="bettorsense.W012",
        )
    ]


# --- the caches people run -------------------------------------------------------------------------

_CULLING_BACKENDS = {
    "django.core.cache.backends.db.DatabaseCache",
    "django.core.cache.backends.locmem.LocMemCache",
}
_REDIS_BACKENDS = {
    "django.core.cache.backends.redis.RedisCache",
    "django_redis.cache.RedisCache",
}


@register()
def check_cache_kinds(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What the token cache's backend does to the fleet's entries: culling, replicas, unpickling."""
    try:
        config = get_config()
    except BettorSenseConfigurationError:
        return []  # check_settings reports it
    token_cache = settings.CACHES.get(config.cache_alias)
    if token_cache is None:
        return []  # E003
    backend = str(token_cache.get("BACKEND", ""))
    messages: list[CheckMessage] = []
    if backend in _CULLING_BACKENDS and config.profile_cache and config.profile_cache_alias == config.cache_alias:
        messages.append(
            Warning(
                f"Risk profiles are cached in the token cache {config.cache_alias!r} ({backend}), which culls "
                "entries past MAX_ENTRIES: profiles can push out the token, its renewal lock and backoff.",
                hint="Give profiles a cache of their own: add an entry to settings.CACHES and set "
                "BETTORSENSE['PROFILE_CACHE_ALIAS'] to it, or use Redis for the token cache.",
                id="bettorsense.W020",
            )
        )
    if backend in _REDIS_BACKENDS and len(_locations(token_cache.get("LOCATION"))) > 1:
        messages.append(
            Warning(
                f"The token cache {config.cache_alias!r} lists several Redis LOCATIONs: reads go to replicas, "
                "so a renewal lock checked there is not a lock, and a token read there may be an old one.",
                hint="Give BETTORSENSE['CACHE_ALIAS'] a cache with the primary's LOCATION only (replication "
                "can stay behind it, e.g. Redis Sentinel), and keep the replicas for other caches.",
                id="bettorsense.W021",
            )
        )
    if backend in _REDIS_BACKENDS and any(_shared_looking(url) for url in _locations(token_cache.get("LOCATION"))):
        messages.append(
            Info(
                f"The token cache {config.cache_alias!r} is Redis database 0 with no ACL user, and Django's Redis "
                "backends unpickle whatever value sits under a key: whoever can write there can run code in "
                "every process of this deployment.",
                hint="Keep the token cache in a Redis database of its own (redis://host:6379/5) or behind an ACL "
                "user (redis://user:password@host:6379/0) that only this deployment can write, not the "
                "database 0 other applications use. Silence bettorsense.I020 if database 0 is yours alone.",
                id="bettorsense.I020",
            )
        )
    return messages


def _locations(location: Any) -> list[str]:
    """The servers of a cache's LOCATION, split as Django's and django-redis' backends split it."""
    if isinstance(location, list | tuple):
        return [str(item) for item in location if item]
    if isinstance(location, str):
        return [part for part in location.replace(";", ",").split(",") if part.strip()]
    return []


def _shared_looking(url: str) -> bool:
    """A Redis URL of database 0 with no user: where every other application writes by default."""
    parts = urlsplit(url)
    database = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    return not parts.username and database in {"", "0"}
