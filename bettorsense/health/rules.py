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

* Celery beat has not run the renewal task for more than three ``REFRESH_EVERY`` intervals;
* the cache is process-local (not shared), or unreachable (each process falls back to its own
  token);
* the last renewal failed while the token is still valid;
* the token is inside its safety margin (no longer sent) or absent, with no failure recorded;
* the circuit breaker is half-open;
* the last API call was refused for the credentials (401 twice, or 403).

**ok** otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bettorsense.client.breaker import BreakerState
from bettorsense.exceptions import AccessDenied, AuthenticationFailed
from bettorsense.telemetry import ApiCall, TokenState

#: Beat is stale once its last run is older than this many ``REFRESH_EVERY`` intervals.
BEAT_STALE_INTERVALS = 3
#: What an operator starts when beat is stale (the demo project's Celery app is ``project``).
BEAT_HINT = (
    "Start Celery beat and a worker for the project (e.g. `celery -A project beat` and "
    "`celery -A project worker`), with bettorsense.tasks.refresh_token in CELERY_BEAT_SCHEDULE."
)
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
    """The configuration as it may be shown: no secret, the client id masked."""

    environment: str
    token_url: str
    audience: str
    api_url: str
    client_id_masked: str
    has_credentials: bool
    bookmaker_id: int | None
    sub_bookmaker_id: int | None
    refresh_every: float
    probe_account_id: str
    health_token_set: bool


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
        return None if self.config is None else BEAT_STALE_INTERVALS * self.config.refresh_every

    @property
    def beat_stale(self) -> bool:
        """Beat has not run for three intervals, or never; False when the fleet state is unknown."""
        if self.fleet is None or self.beat_stale_after is None:
            return False
        age = self.beat_age
        return age is None or age > self.beat_stale_after

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
        parts.append(f"last request: {renewal.outcome}")
    if snapshot.backoff is not None:
        wait = max(0.0, snapshot.backoff.until - snapshot.taken_at)
        parts.append(f"backing off after {snapshot.backoff.error}, next try in {_seconds(wait)}")
    return "; ".join(parts) or "unknown"


def _beat(snapshot: Snapshot) -> list[Reason]:
    if not snapshot.beat_stale:
        return []
    age = snapshot.beat_age
    limit = snapshot.beat_stale_after or 0.0
    if age is None:
        text = "Celery beat has never run the token renewal (none recorded)."
    else:
        text = (
            f"Celery beat last ran the token renewal {_seconds(age)} ago, more than "
            f"{BEAT_STALE_INTERVALS} intervals ({_seconds(limit)})."
        )
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
                f"The last API call was refused ({call.outcome}, HTTP {call.status}): check the credentials' "
                "audience, package and bookmaker ids.",
            )
        )
    return reasons


def evaluate(snapshot: Snapshot) -> HealthVerdict:
    """The status (the worst of the reasons, ok when there are none) and the reasons, worst first."""
    reasons = [
        *_configuration(snapshot),
        *_cache(snapshot),
        *_token(snapshot),
        *_beat(snapshot),
        *_service(snapshot),
    ]
    reasons.sort(key=lambda reason: -reason.status.rank)
    status = reasons[0].status if reasons else Status.OK
    return HealthVerdict(status=status, reasons=tuple(reasons))
