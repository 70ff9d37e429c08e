"""The health rules: one pure function from a :class:`Snapshot` to a status and its reasons.

The admin page, the JSON endpoint, the ``bettorsense_status`` command and the optional
django-health-check backend all call :func:`evaluate`, so they always agree. Gathering the
snapshot (cache reads, the breaker, the system checks) is :mod:`bettorsense.health.snapshot`'s job.

**down** when calls cannot succeed:

* the settings are invalid, or the credentials are missing, or another ``bettorsense`` system
  check reports an error;
* there is no usable token and the token endpoint is failing (the fleet is backing off, or the
  last token request failed);
* the circuit breaker is open.

**degraded** when calls still succeed but something needs a person:

* Celery beat has not run the renewal task for more than three intervals of its beat entry (or,
  when the schedule has no fixed interval, for longer than ``REFRESH_MARGIN``);
* the cache is process-local (not shared), or unreachable (each process falls back to its own
  token);
* the last renewal failed while the token is still valid;
* the token is inside its safety margin (no longer sent) or absent, with no failure recorded;
* the circuit breaker is half-open;
* the last API call was refused for the credentials (401 twice, or 403);
* the last sync failed, or a sync is in the beat schedule and none succeeded for
  ``SYNC_STALE_AFTER`` (a day by default; before any success, counted from the first run, so a
  fresh install is not degraded while it waits for its first scheduled sync);
* a process's clock is further than ``CLOCK_SKEW_WARN`` from the token server's, or further than
  ``CLOCK_SKEW_MAX`` (then it is not corrected).

Every reason's code is a key of :data:`REASONS`, with its title and what to do about it.

**ok** otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bettorsense.client.breaker import BreakerState
from bettorsense.exceptions import AccessDenied, AuthenticationFailed
from bettorsense.telemetry import ApiCall, ProcessClock, TokenState
from bettorsense.text import shorten, spelt_out

#: Beat is stale once its last run is older than this many intervals of its beat entry.
BEAT_STALE_INTERVALS = 3
#: What an operator starts when beat is stale.
BEAT_HINT = (
    "Check that Celery beat and a worker of your project run (`celery -A <your project> beat` and "
    "`celery -A <your project> worker`), and that beat's schedule has the bettorsense.tasks.refresh_token entry."
)
#: How much of a sync's error a reason quotes; the sync runs' page has all of it.
SYNC_ERROR_LENGTH = 300


@dataclass(frozen=True)
class ReasonInfo:
    title: str
    action: str


#: Every reason code the rules give, its title and what an operator does about it. The runbook in
#: the docs has an entry for each.
REASONS: dict[str, ReasonInfo] = {
    "config-invalid": ReasonInfo(
        "The settings are invalid", "Fix the setting the message names in settings.BETTORSENSE, then redeploy."
    ),
    "credentials-missing": ReasonInfo(
        "The credentials are missing",
        "Set BETTORSENSE['CLIENT_ID'] and BETTORSENSE['CLIENT_SECRET'] to the pair of this environment.",
    ),
    "check-error": ReasonInfo(
        "A system check reports an error", "Run `manage.py check` and fix what the bettorsense error says."
    ),
    "cache-unreachable": ReasonInfo(
        "The cache cannot be reached",
        "Restore the cache server (Redis) or the network to it; meanwhile each process uses a token of its own.",
    ),
    "cache-not-shared": ReasonInfo(
        "The cache is not shared between processes",
        "Point BETTORSENSE['CACHE_ALIAS'] at Redis or the database cache.",
    ),
    "token-unavailable": ReasonInfo(
        "No usable token, and the token endpoint is failing",
        "Read the last error: fix the credentials or the token URL if it names them; otherwise wait out the "
        "backoff, or ask Sportradar about the token endpoint.",
    ),
    "token-expiring": ReasonInfo(
        "The token is inside its safety margin",
        "Check that beat and a worker run; `manage.py bettorsense_token --refresh` renews it now.",
    ),
    "no-token": ReasonInfo(
        "No token is cached", "Nothing, if traffic or beat is about to request one; otherwise check beat."
    ),
    "renewal-failing": ReasonInfo(
        "The last renewal failed while the token is still valid",
        "Read the last error and act on it before the current token expires.",
    ),
    "beat-stale": ReasonInfo("Celery beat is not renewing the token", BEAT_HINT),
    "breaker-open": ReasonInfo(
        "The circuit breaker is open",
        "Calls fail fast until the cool-down ends; read the last API call and check the API's status.",
    ),
    "breaker-half-open": ReasonInfo(
        "The circuit breaker is half-open", "Nothing: the next call tells whether the API is back."
    ),
    "api-refused": ReasonInfo(
        "The API refuses the credentials",
        "Check the audience, the package Sportradar enabled for the client, and the bookmaker ids.",
    ),
    "sync-failed": ReasonInfo(
        "The last sync failed",
        "Read its error on the sync runs page, fix the cause, and run `manage.py bettorsense_sync` again.",
    ),
    "sync-stale": ReasonInfo(
        "No sync succeeded recently",
        "Check that beat and a worker run the sync entry, or run `manage.py bettorsense_sync` by hand.",
    ),
    "clock-skew": ReasonInfo(
        "A process's clock is off the token server's",
        "Fix the named machines' time (NTP); meanwhile their expiries are corrected for the offset.",
    ),
    "clock-skew-uncorrected": ReasonInfo(
        "A process's clock is too far off to be corrected",
        "Fix the named machines' time (NTP), or raise CLOCK_SKEW_MAX if the token server's clock is the right one.",
    ),
}
_CREDENTIAL_REFUSALS = frozenset({AuthenticationFailed.__name__, AccessDenied.__name__})
_COVERED_CHECKS = frozenset({"bettorsense.E001", "bettorsense.E002"})


class Status(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Status.OK: 0, Status.DEGRADED: 1, Status.DOWN: 2}


@dataclass(frozen=True)
class Reason:
    status: Status
    code: str
    message: str


@dataclass(frozen=True)
class HealthVerdict:
    status: Status
    reasons: tuple[Reason, ...]

    @property
    def http_status(self) -> int:
        return 503 if self.status is Status.DOWN else 200


@dataclass(frozen=True)
class ConfigSummary:
    """The configuration as it may be shown: the client id (not a secret), the secret's fingerprint only."""

    environment: str
    token_url: str
    audience: str
    api_url: str
    client_id: str
    client_secret_fingerprint: str
    has_credentials: bool
    bookmaker_id: int | None
    sub_bookmaker_id: int | None
    refresh_margin: float
    sync_stale_after: float
    probe_account_id: str
    health_token_set: bool
    clock_skew_warn: float = 5.0


@dataclass(frozen=True)
class ScheduleInfo:
    """What the Celery beat schedule says about the app's two tasks."""

    refresh_every: float | None  # seconds between renewal runs; None when not in it or not a fixed interval
    sync_scheduled: bool


@dataclass(frozen=True)
class SyncInfo:
    """The local store's sync runs: the first start, the last finished run and the last success (epoch seconds)."""

    first_started_at: float | None  # None: no sync has ever run here
    last_success_at: float | None
    last_finished_at: float | None
    last_finished_failed: bool
    last_error: str


@dataclass(frozen=True)
class CacheInfo:
    alias: str
    backend: str
    shared: bool
    reachable: bool
    error: str | None


@dataclass(frozen=True)
class TokenInfo:
    """The fleet's current token, by fingerprint only."""

    fingerprint: str
    issued_at: float
    expires_at: float
    usable_until: float  # after this the token is no longer sent (the safety margin)


@dataclass(frozen=True)
class BackoffInfo:
    until: float
    error: str
    message: str


class CheckLevel(enum.StrEnum):
    """The level of a system check message, by the name of Django's constant."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class CheckResult:
    level: CheckLevel
    id: str
    message: str
    hint: str


@dataclass(frozen=True)
class Snapshot:
    """Everything the rules look at, taken at ``taken_at``; None where it could not be read."""

    taken_at: float
    config_error: str | None = None
    config: ConfigSummary | None = None
    cache: CacheInfo | None = None
    token: TokenInfo | None = None
    backoff: BackoffInfo | None = None
    fleet: TokenState | None = None
    breaker: BreakerState | None = None
    last_api_call: ApiCall | None = None
    checks: tuple[CheckResult, ...] = ()
    schedule: ScheduleInfo | None = None
    sync: SyncInfo | None = None
    clocks: tuple[ProcessClock, ...] = ()  # the processes that measured their clock lately
    client: str = "default"  # the credential set it shows

    @property
    def token_usable(self) -> bool:
        return self.token is not None and self.taken_at < self.token.usable_until

    @property
    def token_expires_in(self) -> float | None:
        return None if self.token is None else self.token.expires_at - self.taken_at

    @property
    def beat_age(self) -> float | None:
        if self.fleet is None or self.fleet.beat_last_run is None:
            return None
        return max(0.0, self.taken_at - self.fleet.beat_last_run)

    @property
    def beat_stale_after(self) -> float | None:
        """Three intervals of the beat entry; without a fixed interval, the longest renewal window."""
        if self.config is None:
            return None
        every = self.schedule.refresh_every if self.schedule is not None else None
        return BEAT_STALE_INTERVALS * every if every is not None else self.config.refresh_margin

    @property
    def beat_stale(self) -> bool:
        """Beat has not run for three intervals, or never; False when the fleet state is unknown."""
        if self.fleet is None or self.beat_stale_after is None:
            return False
        age = self.beat_age
        return age is None or age > self.beat_stale_after

    @property
    def last_error_resolved(self) -> bool:
        """A renewal succeeded after the last recorded error."""
        if self.fleet is None or self.fleet.last_error is None or self.fleet.last_renewal is None:
            return False
        renewal = self.fleet.last_renewal
        return renewal.succeeded and renewal.at > self.fleet.last_error.at

    @property
    def sync_age(self) -> float | None:
        """Seconds since the last successful sync finished."""
        if self.sync is None or self.sync.last_success_at is None:
            return None
        return max(0.0, self.taken_at - self.sync.last_success_at)

    @property
    def token_endpoint_failing(self) -> bool:
        """The fleet is backing off, or the last token request anyone made failed."""
        renewal = self.fleet.last_renewal if self.fleet is not None else None
        return self.backoff is not None or (renewal is not None and not renewal.succeeded)


def _seconds(value: float) -> str:
    return f"{value:.0f} s"


def _configuration(snapshot: Snapshot) -> list[Reason]:
    if snapshot.config_error is not None:
        return [Reason(Status.DOWN, "config-invalid", f"The settings are invalid: {snapshot.config_error}")]
    reasons: list[Reason] = []
    if snapshot.config is not None and not snapshot.config.has_credentials:
        reasons.append(
            Reason(
                Status.DOWN,
                "credentials-missing",
                "The credentials are missing: set BETTORSENSE['CLIENT_ID'] and ['CLIENT_SECRET'].",
            )
        )
    for check in snapshot.checks:
        if check.level == CheckLevel.ERROR and check.id not in _COVERED_CHECKS:
            reasons.append(Reason(Status.DOWN, "check-error", f"System check {check.id}: {check.message}"))
    return reasons


def _cache(snapshot: Snapshot) -> list[Reason]:
    cache = snapshot.cache
    if cache is None:
        return []
    if not cache.reachable:
        return [
            Reason(
                Status.DEGRADED,
                "cache-unreachable",
                f"The cache {cache.alias!r} cannot be reached ({cache.error or 'unknown error'}): each process "
                "falls back to a token of its own, and the fleet's figures cannot be read.",
            )
        ]
    if not cache.shared:
        return [
            Reason(
                Status.DEGRADED,
                "cache-not-shared",
                f"The cache {cache.alias!r} ({cache.backend}) is not shared between processes: each process "
                "requests its own token. Use Redis or the database cache.",
            )
        ]
    return []


def _token(snapshot: Snapshot) -> list[Reason]:
    if snapshot.config is None or not snapshot.config.has_credentials:
        return []  # already down for the configuration
    failing = snapshot.token_endpoint_failing
    failure = _failure_words(snapshot)
    if not snapshot.token_usable:
        if failing:
            return [
                Reason(
                    Status.DOWN,
                    "token-unavailable",
                    f"No usable token, and the token endpoint is failing ({failure}).",
                )
            ]
        if snapshot.token is not None:
            left = snapshot.token_expires_in or 0.0
            words = f"expires in {_seconds(left)}" if left > 0 else f"expired {_seconds(-left)} ago"
            return [
                Reason(
                    Status.DEGRADED,
                    "token-expiring",
                    f"The token {words}, inside the safety margin: it is no longer sent and its renewal is overdue.",
                )
            ]
        return [
            Reason(
                Status.DEGRADED,
                "no-token",
                "No token is cached: the next API call requests one and waits for it.",
            )
        ]
    if failing:
        return [
            Reason(
                Status.DEGRADED,
                "renewal-failing",
                f"The last token renewal failed ({failure}); the current token stays usable for "
                f"{_seconds((snapshot.token.usable_until if snapshot.token else 0.0) - snapshot.taken_at)}.",
            )
        ]
    return []


def _failure_words(snapshot: Snapshot) -> str:
    parts: list[str] = []
    renewal = snapshot.fleet.last_renewal if snapshot.fleet is not None else None
    if renewal is not None and not renewal.succeeded:
        parts.append(f"last request: {renewal.error or 'failed'}")
    if snapshot.backoff is not None:
        wait = max(0.0, snapshot.backoff.until - snapshot.taken_at)
        parts.append(f"the fleet waits {_seconds(wait)} before the next request")
    return "; ".join(parts) or "the cause was not recorded"


def _beat(snapshot: Snapshot) -> list[Reason]:
    if not snapshot.beat_stale:
        return []
    age = snapshot.beat_age
    limit = snapshot.beat_stale_after or 0.0
    if age is None:
        text = "Celery beat has never run the token renewal (none recorded)."
    else:
        every = snapshot.schedule.refresh_every if snapshot.schedule is not None else None
        limit_words = (
            f"{BEAT_STALE_INTERVALS} intervals of its schedule ({_seconds(limit)})"
            if every is not None
            else f"the renewal window ({_seconds(limit)})"
        )
        text = f"Celery beat last ran the token renewal {_seconds(age)} ago, more than {limit_words}."
    return [Reason(Status.DEGRADED, "beat-stale", f"{text} Requests renew the token themselves meanwhile. {BEAT_HINT}")]


def _service(snapshot: Snapshot) -> list[Reason]:
    reasons: list[Reason] = []
    if snapshot.breaker == BreakerState.OPEN:
        reasons.append(
            Reason(
                Status.DOWN,
                "breaker-open",
                "The circuit breaker is open after repeated API failures: calls fail fast until the cool-down ends.",
            )
        )
    elif snapshot.breaker == BreakerState.HALF_OPEN:
        reasons.append(
            Reason(
                Status.DEGRADED,
                "breaker-half-open",
                "The circuit breaker is half-open: the next call probes the API.",
            )
        )
    call = snapshot.last_api_call
    if call is not None and call.outcome in _CREDENTIAL_REFUSALS:
        reasons.append(
            Reason(
                Status.DEGRADED,
                "api-refused",
                f"The last API call was refused ({spelt_out(call.outcome).lower()}, HTTP {call.status}): check the "
                "credentials' "
                "audience, package and bookmaker ids.",
            )
        )
    return reasons


def _sync(snapshot: Snapshot) -> list[Reason]:
    sync, config = snapshot.sync, snapshot.config
    if sync is None or config is None:
        return []
    reasons: list[Reason] = []
    if sync.last_finished_failed:
        error = shorten(sync.last_error, SYNC_ERROR_LENGTH) or "no error was recorded"
        reasons.append(Reason(Status.DEGRADED, "sync-failed", f"The last sync of the local store failed: {error}"))
    scheduled = snapshot.schedule is not None and snapshot.schedule.sync_scheduled
    # Without a success, the time is counted from the first run: a fresh install waits for its first sync.
    age = snapshot.sync_age
    waited: float | None = age
    if age is None and sync.first_started_at is not None:
        waited = max(0.0, snapshot.taken_at - sync.first_started_at)
    if scheduled and waited is not None and waited > config.sync_stale_after:
        since = (
            f"No sync has succeeded in the {_ago(waited)} since the first one started"
            if age is None
            else f"The last successful sync was {_ago(age)} ago"
        )
        reasons.append(
            Reason(
                Status.DEGRADED,
                "sync-stale",
                f"{since}, though one is in the beat schedule (limit: {_ago(config.sync_stale_after)}): "
                "the local store is falling behind the vendor's scores.",
            )
        )
    return reasons


def _clocks(snapshot: Snapshot) -> list[Reason]:
    if snapshot.config is None:
        return []
    limit = snapshot.config.clock_skew_warn
    refused = [c for c in snapshot.clocks if c.refused]
    skewed = [c for c in snapshot.clocks if not c.refused and abs(c.skew) > limit]
    reasons: list[Reason] = []
    if refused:
        reasons.append(
            Reason(
                Status.DEGRADED,
                "clock-skew-uncorrected",
                f"{_processes(refused)} measured a clock offset to the token server beyond CLOCK_SKEW_MAX and "
                "did not correct it: their token expiries are wrong. Fix the machines' time (NTP).",
            )
        )
    if skewed:
        reasons.append(
            Reason(
                Status.DEGRADED,
                "clock-skew",
                f"{_processes(skewed)} run on a clock more than {_seconds(limit)} off the token server's "
                "(expiries are corrected for it). Fix the machines' time (NTP).",
            )
        )
    return reasons


def _ago(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 60:.0f} min"


def _processes(clocks: list[ProcessClock]) -> str:
    shown = ", ".join(f"{c.process} ({c.skew:+.1f} s)" for c in clocks[:5])
    more = f" and {len(clocks) - 5} more" if len(clocks) > 5 else ""
    return f"Process{'es' if len(clocks) > 1 else ''} {shown}{more}"


def evaluate(snapshot: Snapshot) -> HealthVerdict:
    """The status (the worst of the reasons, ok when there are none) and the reasons, worst first."""
    reasons = [
        *_configuration(snapshot),
        *_cache(snapshot),
        *_token(snapshot),
        *_beat(snapshot),
        *_service(snapshot),
        *_sync(snapshot),
        *_clocks(snapshot),
    ]
    reasons.sort(key=lambda reason: -reason.status.rank)
    status = reasons[0].status if reasons else Status.OK
    return HealthVerdict(status=status, reasons=tuple(reasons))
