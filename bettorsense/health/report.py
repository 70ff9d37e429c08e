"""Health as data: the JSON body of the endpoint and of ``bettorsense_status --json``, and display helpers.

Everything here reads a :class:`~bettorsense.health.Snapshot`, which holds no secret (fingerprints,
the client id, which is not one, and redacted messages), so nothing built from it can leak one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bettorsense.health.rules import HealthVerdict, Snapshot, Status
from bettorsense.telemetry import OUTCOME_OK, ApiCall, ProcessClock, Renewal
from bettorsense.text import spelt_out

if TYPE_CHECKING:
    from bettorsense.health.fleet import FleetHealth, SetHealth


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def stamp(epoch: float) -> str:
    """``2026-11-28 10:02:03 UTC``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when(epoch: float | None, now: float) -> str:
    """``2026-11-28 10:02:03 UTC (12 s ago)``, or ``never``."""
    if epoch is None:
        return "never"
    return f"{stamp(epoch)} ({duration(now - epoch)} ago)" if now >= epoch else stamp(epoch)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 10 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"  # floored, as the page's countdown does
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


#: What beat's last run of the renewal task did, in words (the task returns these codes).
BEAT_OUTCOME_WORDS = {
    "not-due": "nothing to do: the token was not due for renewal",
    "renewed": "renewed the token",
    "busy": "left it to another process that was renewing",
    "backoff": "waited: the fleet is backing off after a failed request",
    "failed": "tried to renew the token and failed",
    "cache-unavailable": "could not reach the cache",
}


def outcome_words(outcome: str) -> str:
    """A recorded outcome in words: ``ok``, or an error class name spelt out (``Service unavailable``)."""
    return "ok" if outcome == OUTCOME_OK else spelt_out(outcome)


def beat_outcome_words(outcome: str | None) -> str | None:
    if outcome is None:
        return None
    return BEAT_OUTCOME_WORDS.get(outcome, "an outcome this version does not know")


def schedule_words(snapshot: Snapshot) -> str:
    """How often beat runs the renewal, and when health calls it stale."""
    schedule = snapshot.schedule
    stale = snapshot.beat_stale_after
    after = f"; stale after {duration(stale)}" if stale is not None else ""
    if schedule is None:
        return "unknown"
    if schedule.refresh_every is None:
        return f"the renewal has no fixed interval in the beat schedule{after}"
    return f"renewal every {duration(schedule.refresh_every)}{after}"


def sync_words(snapshot: Snapshot) -> str:
    """The last successful sync and its age, whether one is scheduled, and a failure if the last run failed."""
    sync = snapshot.sync
    if sync is None:
        return "unknown (the database cannot be read)" if snapshot.config is not None else "unknown"
    success = (
        "never succeeded"
        if sync.last_success_at is None
        else f"last success {when(sync.last_success_at, snapshot.taken_at)}"
    )
    scheduled = snapshot.schedule is not None and snapshot.schedule.sync_scheduled
    words = f"{success}; {'in the beat schedule' if scheduled else 'not in the beat schedule'}"
    if sync.last_finished_failed:
        words += f"; the last run FAILED: {sync.last_error or 'no error was recorded'}"
    return words


def _renewal(renewal: Renewal | None) -> dict[str, Any] | None:
    if renewal is None:
        return None
    return {
        "at": iso(renewal.at),
        "outcome": renewal.outcome,
        "origin": renewal.origin,
        "duration_ms": round(renewal.duration * 1000, 1),
        "fingerprint": renewal.fingerprint,
        "error": renewal.error,
    }


def _api_call(call: ApiCall | None) -> dict[str, Any] | None:
    if call is None:
        return None
    return {
        "at": iso(call.at),
        "outcome": call.outcome,
        "status": call.status,
        "latency_ms": round(call.latency * 1000, 1),
        "answered": call.answered,
    }


def _clock(clock: ProcessClock) -> dict[str, Any]:
    """A process's clock against the token server's; ``skew`` > 0: the process's clock is ahead."""
    return {
        "process": clock.process,
        "skew": round(clock.skew, 2),
        "uncertainty": round(clock.uncertainty, 2),
        "source": clock.source,
        "measured_at": iso(clock.at),
        "corrected": not clock.refused,
    }


def health_json(snapshot: Snapshot, health: HealthVerdict, *, full: bool) -> dict[str, Any]:
    """The endpoint's body: only the status word unless ``full``."""
    if not full:
        return {"status": health.status.value}
    fleet = snapshot.fleet
    token = snapshot.token
    expires_in = snapshot.token_expires_in
    beat_age = snapshot.beat_age
    config = snapshot.config
    last_error = _renewal(fleet.last_error) if fleet else None
    if last_error is not None and fleet is not None and fleet.last_error is not None:
        last_error["age"] = round(max(0.0, snapshot.taken_at - fleet.last_error.at), 1)
        last_error["resolved"] = snapshot.last_error_resolved
    sync = snapshot.sync
    sync_age = snapshot.sync_age
    return {
        "status": health.status.value,
        "reasons": [{"status": r.status.value, "code": r.code, "message": r.message} for r in health.reasons],
        "checked_at": iso(snapshot.taken_at),
        "environment": config.environment if config else None,
        "credentials": {"client_id": config.client_id, "client_secret": config.client_secret_fingerprint}
        if config
        else None,
        "token": {
            "present": token is not None,
            "usable": snapshot.token_usable,
            "fingerprint": token.fingerprint if token else None,
            "issued_at": iso(token.issued_at) if token else None,
            "expires_at": iso(token.expires_at) if token else None,
            "expires_in": round(expires_in, 1) if expires_in is not None else None,
            "last_renewal": _renewal(fleet.last_renewal) if fleet else None,
            "last_error": last_error,
            "backoff_until": iso(snapshot.backoff.until) if snapshot.backoff else None,
            "renewals": {"last_hour": fleet.renewals_last_hour, "last_day": fleet.renewals_last_day} if fleet else None,
            "requests": {"last_hour": fleet.requests_last_hour, "last_day": fleet.requests_last_day} if fleet else None,
        },
        "beat": {
            "last_run": iso(fleet.beat_last_run) if fleet else None,
            "last_outcome": fleet.beat_last_outcome if fleet else None,
            "age": round(beat_age, 1) if beat_age is not None else None,
            "every": snapshot.schedule.refresh_every if snapshot.schedule else None,
            "stale_after": snapshot.beat_stale_after,
            "stale": snapshot.beat_stale,
        },
        "sync": None
        if sync is None
        else {
            "scheduled": snapshot.schedule.sync_scheduled if snapshot.schedule else None,
            "last_success": iso(sync.last_success_at),
            "age": round(sync_age, 1) if sync_age is not None else None,
            "stale_after": config.sync_stale_after if config else None,
            "last_run_failed": sync.last_finished_failed,
            "last_run_finished": iso(sync.last_finished_at),
            "error": sync.last_error or None,
        },
        "breaker": None if snapshot.breaker is None else str(snapshot.breaker),
        "last_api_call": _api_call(snapshot.last_api_call),
        "cache": {
            "alias": snapshot.cache.alias,
            "backend": snapshot.cache.backend,
            "shared": snapshot.cache.shared,
            "reachable": snapshot.cache.reachable,
        }
        if snapshot.cache
        else None,
        "checks": [{"level": str(c.level), "id": c.id, "message": c.message} for c in snapshot.checks],
        "clocks": [_clock(c) for c in snapshot.clocks],
    }


STATUS_WORDS = {
    Status.OK: "OK",
    Status.DEGRADED: "Degraded",
    Status.DOWN: "Down",
}


#: What the health body shows of each credential set (the top level is the ``default`` set's).
_SET_KEYS = ("status", "reasons", "environment", "credentials", "token", "beat", "sync", "breaker", "last_api_call")


def fleet_json(fleet: FleetHealth, *, full: bool) -> dict[str, Any]:
    """The endpoint's body for every credential set: the fleet's status; with ``full``, the
    ``default`` set's details at the top level as before, and each set's under ``clients``."""
    body = health_json(fleet.default, fleet.verdict, full=full)
    if full:
        body["clients"] = [set_json(one) for one in fleet.sets]
    return body


def set_json(one: SetHealth) -> dict[str, Any]:
    body = health_json(one.snapshot, one.verdict, full=True)
    config = one.snapshot.config
    return {
        "name": one.client,
        **{key: body[key] for key in _SET_KEYS},
        "bookmaker": None if config is None else {"id": config.bookmaker_id, "sub_id": config.sub_bookmaker_id},
    }
