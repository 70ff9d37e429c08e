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
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from functools import cache, cached_property, lru_cache
from typing import Any, Final, Generic, TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

from bettorsense.exceptions import BettorSenseConfigurationError, UnknownClient


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

#: What erasure does to rows kept for regulators (reviews, the access log).
ERASE_POLICIES: Final = ("delete", "pseudonymise", "keep")

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
class KeyMaterial(Parser[tuple[str, ...]]):
    """Sealing keys, first seals and all open: a string or a list of strings; empty: Django's
    ``SECRET_KEY`` then ``SECRET_KEY_FALLBACKS`` (read here so that nothing raises later)."""

    #: Each key adds an envelope to every entry (bettorsense.sealing.MAX_ENVELOPES).
    most: int = 8

    # Not @sensitive_variables: its wrapper's frame would hold the value where this raises, and
    # error reports show every frame's locals; ``value`` is deleted before the raise instead.
    def parse(self, name: str, value: Any) -> tuple[str, ...]:
        if not value:
            if len([k for k in getattr(settings, "SECRET_KEY_FALLBACKS", ()) if k]) >= self.most:
                raise BettorSenseConfigurationError(
                    f"SECRET_KEY and SECRET_KEY_FALLBACKS hold more than {self.most} keys, which seal the "
                    f"cache entries of BETTORSENSE[{name!r}]: drop the oldest fallbacks."
                ) from None
            return (str(settings.SECRET_KEY), *(str(k) for k in getattr(settings, "SECRET_KEY_FALLBACKS", ()) if k))
        if isinstance(value, str):
            return (value,)
        if (
            isinstance(value, list | tuple)
            and 0 < len(value) <= self.most
            and all(isinstance(k, str) and k for k in value)
        ):
            return tuple(value)
        del value
        raise _invalid(name, f"a string or a list of 1 to {self.most} non-empty strings") from None

    def show(self, default: Any) -> str:
        return _code(str(default)) if default else "`SECRET_KEY` + `SECRET_KEY_FALLBACKS`"


@dataclass(frozen=True)
class OneKey(Parser[str]):
    """One key: a non-empty string; empty: Django's ``SECRET_KEY`` (read here so that nothing raises later)."""

    @sensitive_variables()
    def parse(self, name: str, value: Any) -> str:
        if not value:
            return str(settings.SECRET_KEY)
        if isinstance(value, str):
            return value
        raise _invalid(name, "a string") from None

    def show(self, default: Any) -> str:
        return _code(str(default)) if default else "`SECRET_KEY`"


#: The credential set of a flat ``BETTORSENSE`` dict, and of every call that names none.
DEFAULT_CLIENT: Final = "default"
#: A set's name is part of cache keys, log lines and a database column.
CLIENT_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CLIENT_NAME_MAX_LENGTH: Final = 64


def _client_sets_problem(value: Any) -> str | None:
    """What is wrong with the shape of ``CLIENTS``, or None; never raises."""
    if not isinstance(value, dict):
        return f"a dict of credential sets by name, not {type(value).__name__}"
    for key, own in value.items():
        if not isinstance(key, str) or not CLIENT_NAME_PATTERN.fullmatch(key):
            shown = repr(key)[:70] if isinstance(key, str) else type(key).__name__
            return (
                f"a dict whose keys name credential sets: 1 to {CLIENT_NAME_MAX_LENGTH} letters, digits, '_', '.' "
                f"or '-', starting with a letter or digit; not {shown}"
            )
        if not isinstance(own, dict):
            return f"a dict of dicts; the set {key!r} is a {type(own).__name__}"
    return None


@dataclass(frozen=True)
class ClientSets(Parser[tuple[str, ...]]):
    """``CLIENTS``: a dict of credential sets by name, each a dict of settings; gives every set's name,
    ``default`` first. Only the shape is checked here: each set's values are parsed as its own Config."""

    # Not @sensitive_variables: its wrapper's frame would hold every set's secrets where this
    # raises; ``value`` is deleted before the raise instead.
    def parse(self, name: str, value: Any) -> tuple[str, ...]:
        if value in (None, ""):
            return (DEFAULT_CLIENT,)
        problem = _client_sets_problem(value)
        if problem is not None:
            del value
            raise _invalid(name, problem) from None
        return (DEFAULT_CLIENT, *sorted(key for key in value if key != DEFAULT_CLIENT))

    def show(self, default: Any) -> str:
        return "only `default`"


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
    #: Where a credential set may set it (:data:`SCOPES`): every set inherits a ``shared`` setting
    #: from the top level and may override it; an ``own`` one is never inherited by a named set; a
    #: ``fleet`` one is read at the top level only.
    scope: str = "shared"

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
    Setting("CLIENT_ID", Text(), "", "client id of that environment's credentials", scope="own"),
    Setting("CLIENT_SECRET", Text(), "", "client secret of that environment's credentials", secret=True, scope="own"),
    Setting(
        "BOOKMAKER_ID", OptionalInt(), None, "Sportradar-issued bookmaker id used when a call names none", scope="own"
    ),
    Setting(
        "SUB_BOOKMAKER_ID",
        OptionalInt(),
        None,
        "Sportradar-issued sub-bookmaker id used when a call names none",
        scope="own",
    ),
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
        scope="fleet",
    ),
    Setting(
        "PROFILE_CACHE_ALIAS",
        Text(),
        "",
        "entry of `CACHES` where cached risk profiles live; empty: `CACHE_ALIAS`. A cache of their own keeps "
        "profiles from filling (and culling) the token cache",
        scope="fleet",
    ),
    Setting("KEY_PREFIX", Text(), "bettorsense", "prefix of every cache key of the app", scope="fleet"),
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
    # docs/vendor-api.md §3 "Clock skew"; see tokens.clock.ServerClock.
    Setting(
        "CLOCK_SKEW_MAX",
        Seconds(minimum=1),
        300.0,
        "largest offset to the token server's clock a process believes; a larger measurement is ignored, and shown",
    ),
    Setting(
        "CLOCK_SKEW_WARN",
        Seconds(),
        5.0,
        "health warns when a process's clock is further than this from the token server's",
    ),
    Setting(
        "CLOCK_PROBE_EVERY",
        Seconds(),
        600.0,
        "how often a process that has not requested a token lately measures its clock offset "
        "(a HEAD of `TOKEN_URL`, no credentials); 0: never",
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
        "key (or list of keys: the first seals, all open) that encrypts and authenticates every cache entry of the app",
        attribute_name="encryption_keys",
        secret=True,
        scope="fleet",
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
    # Our choice (the vendor is silent): a hot read without the shared cache, for a few seconds.
    Setting(
        "PROFILE_MEMO_TTL",
        Seconds(),
        5.0,
        "how long a process keeps in memory a profile (or 404) it read from or wrote to the profile cache, never "
        "past that entry's own deadline; erasure reaches other processes' copies within it. 0: no memo",
        scope="fleet",
    ),
    Setting(
        "PROFILE_MEMO_SIZE",
        Count(minimum=1),
        10_000,
        "most profiles and remembered 404s one process keeps in that memo; the oldest goes first",
        scope="fleet",
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
    Setting(
        "SYNC_LOCK_TTL",
        Seconds(minimum=1),
        900.0,
        "lifetime of the fleet-wide sync lock, touched per page; a running sync silent for longer is abandoned",
    ),
    Setting(
        "SYNC_PREFETCH_PAGES",
        Count(minimum=0),
        2,
        "batch pages the sync downloads and parses ahead, in a background thread, while it writes one; 0 fetches "
        "each page after the previous one is committed",
    ),
    Setting(
        "SYNC_POSTGRES_FAST_PATH",
        Flag(),
        True,
        "on PostgreSQL, write each sync page with one statement over arrays instead of the ORM's bulk inserts",
    ),
    Setting(
        "SIGNAL_INITIAL_LOAD",
        Flag(),
        False,
        "send `risk_band_changed` (previous band None) for every player of a bookmaker pair's first load",
    ),
    Setting(
        "SYNC_STALE_AFTER",
        Seconds(minimum=60),
        1.0 * _SECONDS_PER_DAY,
        "health is degraded when a sync is in the beat schedule and none succeeded for this long",
    ),
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
        scope="fleet",
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
        "METRICS_DEFAULT_REGISTRY",
        Flag(),
        False,
        "at start-up, add the metrics to prometheus_client's default registry (django-prometheus serves it)",
        scope="fleet",
    ),
    Setting(
        "PROBE_ACCOUNT_ID",
        Text(required=True),
        "player_1",
        'the account the health page\'s "Check now" asks for (a 404 still proves the API answered)',
    ),  # Privacy (docs/responsible-gaming.md): our choices, the vendor is silent on all of them.
    Setting(
        "LOG_ACCOUNT_IDS",
        Flag(),
        False,
        "log players' account ids as they are; off: log lines name a player by a pseudonym (keyed hash)",
        scope="fleet",
    ),
    Setting(
        "PSEUDONYM_KEY",
        OneKey(),
        "",
        "key material of the pseudonyms in logs and pseudonymised rows (changing it changes every pseudonym)",
        secret=True,
        scope="fleet",
    ),
    Setting(
        "ERASE_REVIEWS",
        Choice(ERASE_POLICIES),
        "pseudonymise",
        "what `bettorsense_erase` does to the player's reviews: `delete`, `pseudonymise` or `keep`",
        scope="fleet",
    ),
    Setting(
        "ERASE_ACCESS_LOG",
        Choice(ERASE_POLICIES),
        "pseudonymise",
        "what `bettorsense_erase` does to the access-log rows about the player: `delete`, `pseudonymise` or `keep`",
        scope="fleet",
    ),
    Setting(
        "HISTORY_RETENTION",
        Seconds(),
        730.0 * _SECONDS_PER_DAY,
        "age after which `bettorsense_purge` removes a score change no kept review refers to; 0: never",
        scope="fleet",
    ),
    Setting(
        "REVIEW_RETENTION",
        Seconds(),
        1825.0 * _SECONDS_PER_DAY,
        "age after which `bettorsense_purge` removes a review; 0: never",
        scope="fleet",
    ),
    Setting(
        "ACCESS_LOG_RETENTION",
        Seconds(),
        730.0 * _SECONDS_PER_DAY,
        "age after which `bettorsense_purge` removes an access-log row; 0: never",
        scope="fleet",
    ),
    # Our choice: the vendor's API has no review workflow. Names, not RiskBand's inferred codes.
    Setting(
        "REVIEW_BAND",
        Choice(("low", "medium", "high", "very_high"), lower_case=True),
        "high",
        "a player whose band rises into this band or above enters the admin's review queue: `low`, `medium`, "
        "`high`, `very_high`",
        scope="fleet",
    ),
    Setting(
        "CLIENTS",
        ClientSets(),
        None,
        "more credential sets (brands) by name, each a dict of the settings it sets for itself "
        "(see Credential sets below)",
        attribute_name="clients",
        scope="fleet",
    ),
)

#: Where a setting may be given: ``shared`` at the top level and in any set, ``own`` per set and
#: not inherited by a named set, ``fleet`` at the top level only.
SCOPES: Final = ("shared", "own", "fleet")

DEFAULTS: Final[dict[str, Any]] = {setting.name: setting.default for setting in SETTINGS}

#: Settings that were read once: a check (W011) says why they are ignored now, instead of W004.
DEPRECATED_SETTINGS: Final[dict[str, str]] = {
    "REFRESH_EVERY": "The beat interval is now read from the Celery beat schedule itself (the entry that runs "
    "bettorsense.tasks.refresh_token), so the checks and the health page cannot disagree with it.",
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
    profile_cache_alias: str
    key_prefix: str
    refresh_margin: float
    expiry_safety: float
    local_recheck: float
    token_wait_timeout: float
    clock_skew_max: float
    clock_skew_warn: float
    clock_probe_every: float
    connect_timeout: float
    read_timeout: float
    backoff_base: float
    backoff_max: float
    encryption_keys: tuple[str, ...] = field(repr=False)
    max_retries: int
    retry_backoff: float
    retry_budget: float
    breaker_threshold: int
    breaker_cooldown: float
    profile_cache: bool
    recompute_at_utc: time
    not_found_ttl: float
    stale_ttl: float
    profile_memo_ttl: float
    profile_memo_size: int
    batch_date_param: str
    batch_date_format: str
    batch_page_size: int
    batch_max_pages: int
    sync_overlap: float
    sync_lock_ttl: float
    sync_prefetch_pages: int
    sync_postgres_fast_path: bool
    signal_initial_load: bool
    sync_stale_after: float
    serve_from_store: bool
    health_token: str = field(repr=False)
    allow_insecure_urls: bool
    token_max_bytes: int
    api_max_bytes: int
    token_max_length: int
    metrics_default_registry: bool
    probe_account_id: str
    log_account_ids: bool
    pseudonym_key: str = field(repr=False)
    erase_reviews: str
    erase_access_log: str
    history_retention: float
    review_retention: float
    access_log_retention: float
    review_band: str
    clients: tuple[str, ...]
    #: The name of this credential set (not a setting: the key of ``CLIENTS``, or ``default``).
    client: str = DEFAULT_CLIENT

    @property
    def is_default_client(self) -> bool:
        return self.client == DEFAULT_CLIENT

    @cached_property
    def credentials_identity(self) -> str:
        """A stable, non-secret id of (token URL, audience, client id): the token's cache key part.

        Worked out once per Config (every cache key holds it); a changed setting makes a new Config.
        """
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


class ClientSettings:
    """One credential set's view of ``settings.BETTORSENSE``: its own dict, then the top level.

    An ``own`` setting (credentials, bookmaker ids) is never taken from the top level by a named
    set, so a brand without its own bookmaker id is an error, not another brand's players.
    """

    __slots__ = ("_own", "_top", "client")

    def __init__(self, top: RawSettings, client: str, own: Mapping[str, Any]) -> None:
        self._top = top
        self._own = own
        self.client = client

    def names(self) -> set[str]:
        return set(self._own)

    def get(self, setting: Setting[Any]) -> Any:
        if setting.name in self._own:
            return self._own[setting.name]
        if setting.scope == "own" and self.client != DEFAULT_CLIENT:
            return setting.default
        return self._top.get(setting.name, setting.default)

    def __repr__(self) -> str:
        return f"<credential set {self.client!r} with keys {sorted(self._own)}>"


@sensitive_variables()
def _raw_settings() -> RawSettings:
    given = getattr(settings, "BETTORSENSE", None) or {}
    if not isinstance(given, dict):
        raise BettorSenseConfigurationError("settings.BETTORSENSE must be a dict.") from None
    return RawSettings(given)


_SETTINGS_BY_NAME: Final = {setting.name: setting for setting in SETTINGS}


def client_names() -> tuple[str, ...]:
    """Every configured credential set's name, ``default`` first."""
    return _client_names()


@lru_cache(maxsize=1)
def _client_names() -> tuple[str, ...]:
    raw = _raw_settings()
    return ClientSets().parse("CLIENTS", raw.get("CLIENTS", None))


def _own_settings(raw: RawSettings, client: str) -> Mapping[str, Any]:
    """The dict of ``CLIENTS[client]``, or an empty one; never raises."""
    sets = raw.get("CLIENTS", None)
    own = sets.get(client) if isinstance(sets, dict) else None
    return own if isinstance(own, dict) else {}


def _client_settings(raw: RawSettings, client: str) -> ClientSettings:
    """The set's view; no local holds a raw value when this raises (``view``'s repr shows key names)."""
    if client not in client_names():
        known = ", ".join(client_names())
        raise UnknownClient(f"No credential set named {client[:70]!r}; configured: {known}.") from None
    view = ClientSettings(raw, client, _own_settings(raw, client))
    fleet_wide = sorted(name for name in view.names() if getattr(_SETTINGS_BY_NAME.get(name), "scope", "") == "fleet")
    if fleet_wide:
        raise BettorSenseConfigurationError(
            f"BETTORSENSE['CLIENTS'][{client!r}] sets {', '.join(fleet_wide)}, which apply to the whole "
            "fleet: set them at the top level of BETTORSENSE."
        ) from None
    return view


def unknown_setting_names() -> list[str]:
    """Keys of settings.BETTORSENSE that this app does not read (likely typos)."""
    return sorted(_raw_settings().names() - set(DEFAULTS) - set(DEPRECATED_SETTINGS))


def unknown_client_setting_names() -> list[tuple[str, str]]:
    """``(set, key)`` for each key of a credential set's dict that this app does not read."""
    sets = _raw_settings().get("CLIENTS", None)
    if not isinstance(sets, dict):
        return []
    return [
        (str(client), str(name))
        for client, own in sets.items()
        if isinstance(own, dict)
        for name in sorted(set(own) - set(DEFAULTS), key=str)
    ]


def _parsed(view: ClientSettings, setting: Setting[Any]) -> Any:
    """One setting of one set, parsed; an error names the set (and holds no value: it is raised
    outside the handler, so it has no context either)."""
    try:
        return setting.parser.parse(setting.name, view.get(setting))
    except BettorSenseConfigurationError as err:
        message = str(err)
    if view.client == DEFAULT_CLIENT:
        raise BettorSenseConfigurationError(message) from None
    raise BettorSenseConfigurationError(f"Credential set {view.client!r}: {message}") from None


def get_config(client: str = DEFAULT_CLIENT) -> Config:
    """The resolved configuration of the credential set ``client``; memoised until a setting changes.

    An unknown name raises :class:`~bettorsense.exceptions.UnknownClient`.
    """
    if not isinstance(client, str):
        raise UnknownClient(f"A credential set is named by a string, not {type(client).__name__}.")
    return _resolved(client)


@cache
@sensitive_variables()
def _resolved(client: str) -> Config:
    raw = _raw_settings()
    view = _client_settings(raw, client)
    # Every parser runs inside this expression, so a config error is raised before any local of
    # this frame holds a parsed secret.
    values = {setting.attribute: _parsed(view, setting) for setting in SETTINGS}
    preset = ENVIRONMENT_PRESETS[values["environment"]]
    values["token_url"] = values["token_url"] or preset.token_url
    values["audience"] = values["audience"] or preset.audience
    values["api_url"] = (values["api_url"] or preset.api_url).rstrip("/")
    values["profile_cache_alias"] = values["profile_cache_alias"] or values["cache_alias"]
    return Config(**values, client=view.client)


def forget_configs() -> None:
    """Drop every memoised Config (a setting changed)."""
    _resolved.cache_clear()
    _client_names.cache_clear()


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
    if setting in {"BETTORSENSE", "SECRET_KEY", "SECRET_KEY_FALLBACKS", "CACHES"}:
        forget_configs()
