"""The one reader of the ``BETTORSENSE`` settings dict.

The app never reads ``os.environ``. It reads ``settings.BETTORSENSE`` through :func:`get_config`,
which is re-read whenever Django sends ``setting_changed`` (so ``override_settings`` works), and
otherwise memoised because the token hot path calls it on every request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import time
from functools import lru_cache
from typing import Any, Final

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from bettorsense.exceptions import BettorSenseConfigurationError


@dataclass(frozen=True)
class EnvironmentPreset:
    token_url: str
    audience: str
    api_url: str


# docs/vendor-api.md §1. Our choice: both environments use the one Auth0 tenant, the environment
# being chosen by the audience and by its own credentials; TOKEN_URL overrides it
# (e.g. https://stg-auth.sportradar.com/oauth/token).
ENVIRONMENT_PRESETS: Final[dict[str, EnvironmentPreset]] = {
    "production": EnvironmentPreset(
        token_url="https://auth.sportradar.com/oauth/token",  # noqa: S106  (a URL)
        audience="mts-insight-tech",
        api_url="https://api.insighttechservices.sportradar.com/api/rg",
    ),
    "integration": EnvironmentPreset(
        token_url="https://auth.sportradar.com/oauth/token",  # noqa: S106  (a URL)
        audience="mts-insight-tech-non-prod",
        api_url="https://api.nonprod.insighttech.ai/ci/api/rg",
    ),
    # The local stand-in (`manage.py bettorsense_sandbox`), shaped like integration.
    "sandbox": EnvironmentPreset(
        token_url="http://127.0.0.1:8765/oauth/token",  # noqa: S106  (a URL)
        audience="mts-insight-tech-non-prod",
        api_url="http://127.0.0.1:8765/ci/api/rg",
    ),
}

DEFAULTS: Final[dict[str, Any]] = {
    "ENVIRONMENT": "integration",
    "CLIENT_ID": "",
    "CLIENT_SECRET": "",
    "BOOKMAKER_ID": None,
    "SUB_BOOKMAKER_ID": None,
    "TOKEN_URL": None,
    "AUDIENCE": None,
    "API_URL": None,
    # Which entry of settings.CACHES holds the shared token, lock, backoff and health state.
    "CACHE_ALIAS": "default",
    "KEY_PREFIX": "bettorsense",
    # Renewal window = min(REFRESH_MARGIN, 10% of the lifetime); see tokens.TokenTiming.
    "REFRESH_MARGIN": 30.0,
    # A token is never sent when it has less than min(EXPIRY_SAFETY, window / 4) seconds left.
    "EXPIRY_SAFETY": 5.0,
    # How often a process re-reads the shared cache while its memoised token is still fresh, so a
    # token invalidated elsewhere stops being used within this many seconds.
    "LOCAL_RECHECK": 5.0,
    # How long a caller with no valid token at all waits for another process's renewal.
    "TOKEN_WAIT_TIMEOUT": 10.0,
    # The interval of the beat entry that runs tasks.refresh_token (used by checks and health).
    "REFRESH_EVERY": 10.0,
    "CONNECT_TIMEOUT": 3.05,
    "READ_TIMEOUT": 10.0,
    # Backoff after a failed token request, shared by the fleet through the cache.
    "BACKOFF_BASE": 1.0,
    "BACKOFF_MAX": 60.0,
    # Key of the encryption of the cached token; derived from SECRET_KEY when empty.
    "TOKEN_ENCRYPTION_KEY": "",
    # API retries (connection errors, 429, 502, 503, 504): bounded in count and in total time.
    "MAX_RETRIES": 3,
    "RETRY_BACKOFF": 0.5,
    "RETRY_BUDGET": 10.0,
    # Circuit breaker, shared through the cache: open after this many consecutive failures.
    "BREAKER_THRESHOLD": 5,
    "BREAKER_COOLDOWN": 30.0,
    # Profile caching: scores are recomputed once a day, by about 04:00 UTC (docs/vendor-api.md §8).
    "PROFILE_CACHE": True,
    "RECOMPUTE_AT_UTC": "04:00",
    "NOT_FOUND_TTL": 300.0,
    # How long the last good profile is kept as the fallback served, marked stale, during an outage.
    "STALE_TTL": 7 * 24 * 3600.0,
    # The vendor does not publish the batch endpoint's date filter; these are our choice (README).
    "BATCH_DATE_PARAM": "changedSince",
    "BATCH_DATE_FORMAT": "datetime",  # or "date"
    "BATCH_PAGE_SIZE": 1000,
    # The daily sync into the local store: re-read this much before the last watermark.
    "SYNC_OVERLAP": 3600.0,
    "SYNC_LOCK_TTL": 900.0,
    # Answer get_player_risk_profile from the store when a sync has run since the last recompute.
    "SERVE_FROM_STORE": True,
    # Bearer key that lets a monitor read the full health JSON; empty: staff sessions only.
    "HEALTH_TOKEN": "",
    # The account whose profile the health page's "Check now" asks for; a 404 also proves the API answered.
    "PROBE_ACCOUNT_ID": "player_1",
}


@dataclass(frozen=True)
class Config:
    """The resolved configuration: the preset of the environment, then the overrides."""

    environment: str
    client_id: str
    client_secret: str = field(repr=False)
    bookmaker_id: int | None
    sub_bookmaker_id: int | None
    token_url: str
    audience: str
    api_url: str
    cache_alias: str
    key_prefix: str
    refresh_margin: float
    expiry_safety: float
    local_recheck: float
    token_wait_timeout: float
    refresh_every: float
    connect_timeout: float
    read_timeout: float
    backoff_base: float
    backoff_max: float
    encryption_key: str = field(repr=False)
    max_retries: int
    retry_backoff: float
    retry_budget: float
    breaker_threshold: int
    breaker_cooldown: float
    profile_cache: bool
    recompute_at_utc: time
    not_found_ttl: float
    stale_ttl: float
    batch_date_param: str
    batch_date_format: str
    batch_page_size: int
    sync_overlap: float
    sync_lock_ttl: float
    serve_from_store: bool
    health_token: str = field(repr=False)
    probe_account_id: str

    @property
    def credentials_identity(self) -> str:
        """A stable, non-secret id of (token URL, audience, client id): the token's cache key part."""
        raw = f"{self.token_url}\n{self.audience}\n{self.client_id}".encode()
        return hashlib.sha256(raw).hexdigest()[:24]

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    @property
    def has_credentials(self) -> bool:
        return bool(self.client_id and self.client_secret)


def _raw_settings() -> dict[str, Any]:
    raw = getattr(settings, "BETTORSENSE", None) or {}
    if not isinstance(raw, dict):
        raise BettorSenseConfigurationError("settings.BETTORSENSE must be a dict.")
    return raw


def unknown_setting_names() -> list[str]:
    """Keys of settings.BETTORSENSE that this app does not read (likely typos)."""
    return sorted(set(_raw_settings()) - set(DEFAULTS))


def _number(name: str, value: Any, *, minimum: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BettorSenseConfigurationError(f"BETTORSENSE[{name!r}] must be a number.") from None
    if number < minimum:
        raise BettorSenseConfigurationError(f"BETTORSENSE[{name!r}] must be at least {minimum}.")
    return number


def _optional_int(name: str, value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BettorSenseConfigurationError(f"BETTORSENSE[{name!r}] must be an integer.") from None


def _clock_time(name: str, value: Any) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise BettorSenseConfigurationError(f"BETTORSENSE[{name!r}] must be a time such as '04:00'.") from None


def _choice(name: str, value: Any, allowed: set[str] | None) -> str:
    text = str(value or "").strip()
    if not text or (allowed is not None and text not in allowed):
        expected = f"one of {sorted(allowed)}" if allowed else "a non-empty string"
        raise BettorSenseConfigurationError(f"BETTORSENSE[{name!r}] must be {expected}.")
    return text


@lru_cache(maxsize=1)
def get_config() -> Config:
    """Resolve settings.BETTORSENSE; memoised until a setting changes."""
    values = {**DEFAULTS, **_raw_settings()}
    environment = str(values["ENVIRONMENT"] or "").strip().lower()
    preset = ENVIRONMENT_PRESETS.get(environment)
    if preset is None:
        known = ", ".join(sorted(ENVIRONMENT_PRESETS))
        raise BettorSenseConfigurationError(f"BETTORSENSE['ENVIRONMENT'] is {environment!r}; expected one of: {known}.")
    return Config(
        environment=environment,
        client_id=str(values["CLIENT_ID"] or ""),
        client_secret=str(values["CLIENT_SECRET"] or ""),
        bookmaker_id=_optional_int("BOOKMAKER_ID", values["BOOKMAKER_ID"]),
        sub_bookmaker_id=_optional_int("SUB_BOOKMAKER_ID", values["SUB_BOOKMAKER_ID"]),
        token_url=str(values["TOKEN_URL"] or preset.token_url),
        audience=str(values["AUDIENCE"] or preset.audience),
        api_url=str(values["API_URL"] or preset.api_url).rstrip("/"),
        cache_alias=str(values["CACHE_ALIAS"]),
        key_prefix=str(values["KEY_PREFIX"]),
        refresh_margin=_number("REFRESH_MARGIN", values["REFRESH_MARGIN"]),
        expiry_safety=_number("EXPIRY_SAFETY", values["EXPIRY_SAFETY"]),
        local_recheck=_number("LOCAL_RECHECK", values["LOCAL_RECHECK"]),
        token_wait_timeout=_number("TOKEN_WAIT_TIMEOUT", values["TOKEN_WAIT_TIMEOUT"]),
        refresh_every=_number("REFRESH_EVERY", values["REFRESH_EVERY"], minimum=0.1),
        connect_timeout=_number("CONNECT_TIMEOUT", values["CONNECT_TIMEOUT"], minimum=0.01),
        read_timeout=_number("READ_TIMEOUT", values["READ_TIMEOUT"], minimum=0.01),
        backoff_base=_number("BACKOFF_BASE", values["BACKOFF_BASE"], minimum=0.01),
        backoff_max=_number("BACKOFF_MAX", values["BACKOFF_MAX"], minimum=0.01),
        encryption_key=str(values["TOKEN_ENCRYPTION_KEY"] or settings.SECRET_KEY),
        max_retries=int(_number("MAX_RETRIES", values["MAX_RETRIES"])),
        retry_backoff=_number("RETRY_BACKOFF", values["RETRY_BACKOFF"]),
        retry_budget=_number("RETRY_BUDGET", values["RETRY_BUDGET"]),
        breaker_threshold=int(_number("BREAKER_THRESHOLD", values["BREAKER_THRESHOLD"], minimum=1)),
        breaker_cooldown=_number("BREAKER_COOLDOWN", values["BREAKER_COOLDOWN"], minimum=0.1),
        profile_cache=bool(values["PROFILE_CACHE"]),
        recompute_at_utc=_clock_time("RECOMPUTE_AT_UTC", values["RECOMPUTE_AT_UTC"]),
        not_found_ttl=_number("NOT_FOUND_TTL", values["NOT_FOUND_TTL"]),
        stale_ttl=_number("STALE_TTL", values["STALE_TTL"]),
        batch_date_param=_choice("BATCH_DATE_PARAM", values["BATCH_DATE_PARAM"], None),
        batch_date_format=_choice("BATCH_DATE_FORMAT", values["BATCH_DATE_FORMAT"], {"date", "datetime"}),
        batch_page_size=int(_number("BATCH_PAGE_SIZE", values["BATCH_PAGE_SIZE"], minimum=1)),
        sync_overlap=_number("SYNC_OVERLAP", values["SYNC_OVERLAP"]),
        sync_lock_ttl=_number("SYNC_LOCK_TTL", values["SYNC_LOCK_TTL"], minimum=1),
        serve_from_store=bool(values["SERVE_FROM_STORE"]),
        health_token=str(values["HEALTH_TOKEN"] or ""),
        probe_account_id=_choice("PROBE_ACCOUNT_ID", values["PROBE_ACCOUNT_ID"], None),
    )


@receiver(setting_changed)
def _forget_config(*, setting: str, **kwargs: Any) -> None:
    if setting in {"BETTORSENSE", "SECRET_KEY", "CACHES"}:
        get_config.cache_clear()
