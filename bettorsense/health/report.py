"""Health as data: the JSON body of the endpoint and of ``bettorsense_status --json``, and display helpers.

Everything here reads a :class:`~bettorsense.health.Snapshot`, which holds no secret (fingerprints,
a masked client id, redacted messages), so nothing built from it can leak one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bettorsense.health.rules import HealthVerdict, Snapshot, Status
from bettorsense.telemetry import ApiCall, Renewal


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


def health_json(snapshot: Snapshot, health: HealthVerdict, *, full: bool) -> dict[str, Any]:
    """The endpoint's body: only the status word unless ``full``."""
    if not full:
        return {"status": health.status.value}
    fleet = snapshot.fleet
    token = snapshot.token
    expires_in = snapshot.token_expires_in
    beat_age = snapshot.beat_age
    return {
        "status": health.status.value,
        "reasons": [{"status": r.status.value, "code": r.code, "message": r.message} for r in health.reasons],
        "checked_at": iso(snapshot.taken_at),
        "environment": snapshot.config.environment if snapshot.config else None,
        "token": {
            "present": token is not None,
            "usable": snapshot.token_usable,
            "fingerprint": token.fingerprint if token else None,
            "issued_at": iso(token.issued_at) if token else None,
            "expires_at": iso(token.expires_at) if token else None,
            "expires_in": round(expires_in, 1) if expires_in is not None else None,
            "last_renewal": _renewal(fleet.last_renewal) if fleet else None,
            "last_error": _renewal(fleet.last_error) if fleet else None,
            "backoff_until": iso(snapshot.backoff.until) if snapshot.backoff else None,
            "renewals": {"last_hour": fleet.renewals_last_hour, "last_day": fleet.renewals_last_day} if fleet else None,
            "requests": {"last_hour": fleet.requests_last_hour, "last_day": fleet.requests_last_day} if fleet else None,
        },
        "beat": {
            "last_run": iso(fleet.beat_last_run) if fleet else None,
            "last_outcome": fleet.beat_last_outcome if fleet else None,
            "age": round(beat_age, 1) if beat_age is not None else None,
            "stale_after": snapshot.beat_stale_after,
            "stale": snapshot.beat_stale,
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
    }


STATUS_WORDS = {
    Status.OK: "OK",
    Status.DEGRADED: "Degraded",
    Status.DOWN: "Down",
}
