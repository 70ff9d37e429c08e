"""The one reader of the ``BETTORSENSE`` settings dict.

The app never reads ``os.environ``. It reads ``settings.BETTORSENSE`` through :func:`get_config`,
which is re-read whenever Django sends ``setting_changed`` (so ``override_settings`` works), and
otherwise memoised because the token hot path calls it on every request.

Each setting is defined once, in :data:`SETTINGS`: its name, its parser, its default and its meaning.
The defaults (:data:`DEFAULTS`), the validation, the unknown-name check (W004) and the README's
configuration table (:func:`markdown_table`) are all built from it.

A mistyped setting raises while other settings hold secrets, and Django's technical 500 page (even
with ``DEBUG = True``, where ``sensitive_variables`` hides nothing) and error trackers show the
local variables of every frame. So no frame of this module holds a secret when it can raise: the raw
dict stays behind :class:`RawSettings`, whose repr is its key names, each parser sees only its own
value, and nothing can raise once the parsed values are gathered.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from functools import lru_cache
from typing import Any, Final, Generic, TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

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

_SECONDS_PER_DAY: Final = 86400

T = TypeVar("T")


def _invalid(name: str, expected: str) -> BettorSenseConfigurationError:
    return BettorSenseConfigurationError(f"BETTORSENSE[{name!r}] must be {expected}.")


def _code(text: str) -> str:
    return f"`{text}`"


class Parser(ABC, Generic[T]):
    """Turns the value given for one setting into the type of its :class:`Config` attribute."""

    @abstractmethod
    def parse(self, name: str, value: Any) -> T:
        """The value for ``Config``; raises BettorSenseConfigurationError naming ``name``."""

    @abstractmethod
    def show(self, default: Any) -> str:
        """The default as the README's configuration table writes it."""


@dataclass(frozen=True)
class Seconds(Parser[float]):
    minimum: float = 0.0

    @sensitive_variables()
    def parse(self, name: str, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _invalid(name, f"a number of seconds, not {type(value).__name__}") from None
        if number < self.minimum:
            raise _invalid(name, f"at least {self.minimum:g} (seconds)") from None
        return number

    def show(self, default: Any) -> str:
        seconds = float(default)
        if seconds >= _SECONDS_PER_DAY and seconds % _SECONDS_PER_DAY == 0:
            return f"{seconds / _SECONDS_PER_DAY:g} days"
        return f"{seconds:g} s"


@dataclass(frozen=True)
class Count(Parser[int]):
    """A whole number; like the float settings it accepts "3" and 3.0, and drops a fraction."""

    minimum: int = 0

    @sensitive_variables()
    def parse(self, name: str, value: Any) -> int:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _invalid(name, f"an integer, not {type(value).__name__}") from None
        if number < self.minimum:
            raise _invalid(name, f"at least {self.minimum}") from None
        return int(number)

    def show(self, default: Any) -> str:
        return str(default)


@dataclass(frozen=True)
class OptionalInt(Parser[int | None]):
    """An integer, or None (given as None or "") for "none configured"."""

    @sensitive_variables()
    def parse(self, name: str, value: Any) -> int | None:
        if value in (None, ""):
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _invalid(name, f"an integer or None, not {type(value).__name__}") from None

    def show(self, default: Any) -> str:
        return "none" if default is None else str(default)


@dataclass(frozen=True)
class Flag(Parser[bool]):
    @sensitive_variables()
    def parse(self, name: str, value: Any) -> bool:
        return bool(value)

    def show(self, default: Any) -> str:
        return "on" if default else "off"


@dataclass(frozen=True)
class ClockTime(Parser[time]):
    @sensitive_variables()
    def parse(self, name: str, value: Any) -> time:
        if isinstance(value, time):
            return value
        try:
            return time.fromisoformat(str(value))
        except ValueError:
            raise _invalid(name, "a time such as '04:00'") from None

    def show(self, default: Any) -> str:
        return _code(self.parse("default", default).strftime("%H:%M"))


@dataclass(frozen=True)
class Choice(Parser[str]):
    options: tuple[str, ...]
    lower_case: bool = False

    @sensitive_variables()
    def parse(self, name: str, value: Any) -> str:
        text = str(value or "").strip()
        if self.lower_case:
            text = text.lower()
        if text not in self.options:
            raise BettorSenseConfigurationError(
                f"BETTORSENSE[{name!r}] is {text!r}; expected one of: {', '.join(self.options)}."
            ) from None
        return text

    def show(self, default: Any) -> str:
        return _code(str(default))


@dataclass(frozen=True)
class Text(Parser[str]):
    """Any string; None counts as empty. ``required``: stripped, and must not be empty."""

    required: bool = False

    @sensitive_variables()
    def parse(self, name: str, value: Any) -> str:
        text = str(value or "")
        if not self.required:
            return text
        text = text.strip()
        if not text:
            raise _invalid(name, "a non-empty string") from None
        return text

    def show(self, default: Any) -> str:
        return _code(str(default)) if default else "empty"


@dataclass(frozen=True)
class PresetOverride(Parser[str | None]):
    """A URL or name that replaces the one of the ENVIRONMENT preset; empty: the preset's."""

    @sensitive_variables()
    def parse(self, name: str, value: Any) -> str | None:
        return str(value) if value else None

    def show(self, default: Any) -> str:
        return "from the `ENVIRONMENT` preset"


@dataclass(frozen=True)
class KeyMaterial(Parser[str]):
    """Key material; empty: the project's SECRET_KEY (read here so that nothing raises later)."""

    @sensitive_variables()
    def parse(self, name: str, value: Any) -> str:
        return str(value or "") or str(settings.SECRET_KEY)

    def show(self, default: Any) -> str:
        return _code(str(default)) if default else "`SECRET_KEY`"


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One key of ``settings.BETTORSENSE``."""

    name: str
    parser: Parser[T]
    default: Any = field(repr=False)
    meaning: str = field(repr=False)
    # The Config attribute, when it is not the lower-cased name.
    attribute_name: str = ""
    # A secret is kept out of Config's repr.
    secret: bool = False

    @property
    def attribute(self) -> str:
        return self.attribute_name or self.name.lower()


SETTINGS: Final[tuple[Setting[Any], ...]] = (
    Setting(
        "ENVIRONMENT",
        Choice(tuple(sorted(ENVIRONMENT_PRESETS)), lower_case=True),
        "integration",
        "preset for token URL, audience and API URL: `integration`, `production`, `sandbox`",
    ),
    Setting("CLIENT_ID", Text(), "", "client id of that environment's credentials"),
    Setting("CLIENT_SECRET", Text(), "", "client secret of that environment's credentials", secret=True),
    Setting("BOOKMAKER_ID", OptionalInt(), None, "Sportradar-issued bookmaker id used when a call names none"),
    Setting("SUB_BOOKMAKER_ID", OptionalInt(), None, "Sportradar-issued sub-bookmaker id used when a call names none"),
    Setting("TOKEN_URL", PresetOverride(), None, "token endpoint; an override wins over the preset"),
    Setting("AUDIENCE", PresetOverride(), None, "token audience; an override wins over the preset"),
    Setting(
        "API_URL", PresetOverride(), None, "API base URL, without a trailing slash; an override wins over the preset"
    ),
    Setting(
        "CACHE_ALIAS",
        Text(),
        "default",
        "entry of `CACHES` where the shared token, lock, backoff, breaker and telemetry live",
    ),
    Setting("KEY_PREFIX", Text(), "bettorsense", "prefix of every cache key of the app"),
    # docs/vendor-api.md §3; see tokens.TokenTiming.
    Setting("REFRESH_MARGIN", Seconds(), 30.0, "renewal window = min(this, 10% of the token lifetime)"),
    Setting("EXPIRY_SAFETY", Seconds(), 5.0, "a token is never sent with less than min(this, window/4) left"),
    Setting(
        "LOCAL_RECHECK",
        Seconds(),
        5.0,
        "how often a process re-reads the shared token while its memo is fresh (bounds the use of a token "
        "invalidated elsewhere)",
    ),
    Setting(
        "TOKEN_WAIT_TIMEOUT",
        Seconds(),
        10.0,
        "how long a caller with no valid token waits for another process's renewal",
    ),
    Setting(
        "REFRESH_EVERY",
        Seconds(minimum=0.1),
        10.0,
        "interval of the beat entry that runs `tasks.refresh_token` (checks and health compare it to the window)",
    ),
    Setting("CONNECT_TIMEOUT", Seconds(minimum=0.01), 3.05, "HTTP connect timeout, token endpoint and API"),
    Setting("READ_TIMEOUT", Seconds(minimum=0.01), 10.0, "HTTP read timeout, token endpoint and API"),
    Setting(
        "BACKOFF_BASE",
        Seconds(minimum=0.01),
        1.0,
        "first fleet-wide backoff after a failed token request (doubling, ±20% jitter, at least `Retry-After`)",
    ),
    Setting("BACKOFF_MAX", Seconds(minimum=0.01), 60.0, "longest fleet-wide backoff after failed token requests"),
    Setting(
        "TOKEN_ENCRYPTION_KEY",
        KeyMaterial(),
        "",
        "key material for the Fernet encryption of the cached token",
        attribute_name="encryption_key",
        secret=True,
    ),
    Setting("MAX_RETRIES", Count(), 3, "API retries on connection errors, timeouts, 429, 502, 503, 504"),
    Setting("RETRY_BACKOFF", Seconds(), 0.5, "base of the doubling, jittered pause between API retries"),
    Setting("RETRY_BUDGET", Seconds(), 10.0, "total time an API call may spend retrying"),
    Setting(
        "BREAKER_THRESHOLD",
        Count(minimum=1),
        5,
        "consecutive failures that open the circuit breaker, shared by the fleet",
    ),
    Setting("BREAKER_COOLDOWN", Seconds(minimum=0.1), 30.0, "how long the open breaker refuses calls"),
    # docs/vendor-api.md §8: scores are recomputed once a day, by about 04:00 UTC.
    Setting("PROFILE_CACHE", Flag(), True, "cache a profile until the next daily recompute"),
    Setting("RECOMPUTE_AT_UTC", ClockTime(), "04:00", "time of day (UTC) by which the daily recompute is done"),
    Setting("NOT_FOUND_TTL", Seconds(), 300.0, "how long a 404 is remembered"),
    Setting(
        "STALE_TTL",
        Seconds(),
        7 * _SECONDS_PER_DAY * 1.0,
        "how long the last good profile is kept, as the fallback served marked stale during an outage",
    ),
    # The vendor does not publish the batch endpoint's date filter; these are our choice.
    Setting(
        "BATCH_DATE_PARAM",
        Text(required=True),
        "changedSince",
        "query parameter of the batch endpoint's date filter (the vendor does not publish its name)",
    ),
    Setting("BATCH_DATE_FORMAT", Choice(("date", "datetime")), "datetime", "format of that filter's value"),
    Setting("BATCH_PAGE_SIZE", Count(minimum=1), 1000, "profiles asked for per batch page"),
    Setting(
        "BATCH_MAX_PAGES",
        Count(minimum=1),
        100_000,
        "most pages one batch walk follows (10^8 players at the default page size)",
    ),
    Setting("SYNC_OVERLAP", Seconds(), 3600.0, "how far before the last watermark the daily sync re-reads"),
    Setting("SYNC_LOCK_TTL", Seconds(minimum=1), 900.0, "lifetime of the fleet-wide sync lock, touched per page"),
    Setting(
        "SERVE_FROM_STORE",
        Flag(),
        True,
        "answer from the local store (source `store`) once a sync has run since the last recompute",
    ),
    Setting(
        "HEALTH_TOKEN",
        Text(),
        "",
        "bearer key that gets the health endpoint's full body without a staff session; empty: staff only",
        secret=True,
    ),
    Setting(
        "ALLOW_INSECURE_URLS",
        Flag(),
        False,
        "allow `http://` token and API URLs outside the sandbox (a local proxy); `bettorsense.E004` otherwise",
    ),
    Setting("TOKEN_MAX_BYTES", Count(minimum=256), 16_384, "largest token answer read, counted after decompression"),
    Setting(
        "API_MAX_BYTES",
        Count(minimum=1024),
        16_777_216,
        "largest API answer read (a batch page), counted after decompression",
    ),
    Setting("TOKEN_MAX_LENGTH", Count(minimum=16), 4096, "longest access token accepted"),
    Setting(
        "PROBE_ACCOUNT_ID",
        Text(required=True),
        "player_1",
        'the account the health page\'s "Check now" asks for (a 404 still proves the API answered)',
    ),
)

DEFAULTS: Final[dict[str, Any]] = {setting.name: setting.default for setting in SETTINGS}


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
    batch_max_pages: int
    sync_overlap: float
    sync_lock_ttl: float
    serve_from_store: bool
    health_token: str = field(repr=False)
    allow_insecure_urls: bool
    token_max_bytes: int
    api_max_bytes: int
    token_max_length: int
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


class RawSettings:
    """``settings.BETTORSENSE`` as given; its repr names the keys and shows no value."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def names(self) -> set[str]:
        return set(self._values)

    def get(self, name: str, default: Any) -> Any:
        return self._values.get(name, default)

    def __repr__(self) -> str:
        return f"<settings.BETTORSENSE with keys {sorted(self._values)}>"


@sensitive_variables()
def _raw_settings() -> RawSettings:
    given = getattr(settings, "BETTORSENSE", None) or {}
    if not isinstance(given, dict):
        raise BettorSenseConfigurationError("settings.BETTORSENSE must be a dict.") from None
    return RawSettings(given)


def unknown_setting_names() -> list[str]:
    """Keys of settings.BETTORSENSE that this app does not read (likely typos)."""
    return sorted(_raw_settings().names() - set(DEFAULTS))


@lru_cache(maxsize=1)
@sensitive_variables()
def get_config() -> Config:
    """Resolve settings.BETTORSENSE; memoised until a setting changes."""
    raw = _raw_settings()
    # Every parser runs inside this expression, so a config error is raised before any local of
    # this frame holds a parsed secret.
    values = {
        setting.attribute: setting.parser.parse(setting.name, raw.get(setting.name, setting.default))
        for setting in SETTINGS
    }
    preset = ENVIRONMENT_PRESETS[values["environment"]]
    values["token_url"] = values["token_url"] or preset.token_url
    values["audience"] = values["audience"] or preset.audience
    values["api_url"] = (values["api_url"] or preset.api_url).rstrip("/")
    return Config(**values)


def markdown_table(demo_env_variables: Mapping[str, str]) -> str:
    """The README's configuration table: one row per setting, in the order of SETTINGS."""
    rows = [
        "| `BETTORSENSE` key | demo env variable | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for setting in SETTINGS:
        variable = demo_env_variables.get(setting.name, "")
        cells: Iterable[str] = (
            _code(setting.name),
            _code(variable) if variable else "",
            setting.parser.show(setting.default),
            setting.meaning,
        )
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


@receiver(setting_changed)
def _forget_config(*, setting: str, **kwargs: Any) -> None:
    if setting in {"BETTORSENSE", "SECRET_KEY", "CACHES"}:
        get_config.cache_clear()
