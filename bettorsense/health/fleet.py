"""Health of every credential set: one snapshot and verdict per set, and the fleet's verdict.

The fleet's status is the worst of the sets'; its reasons are the ``default`` set's as they are,
then each named set's with the set's name in front. The system checks run once: they cover every
set already, so only the ``default`` set's snapshot carries them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bettorsense.conf import DEFAULT_CLIENT, client_names
from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.health.rules import HealthVerdict, Reason, Snapshot, Status, evaluate
from bettorsense.health.snapshot import run_app_checks, take_snapshot


@dataclass(frozen=True)
class SetHealth:
    snapshot: Snapshot
    verdict: HealthVerdict

    @property
    def client(self) -> str:
        return self.snapshot.client


@dataclass(frozen=True)
class FleetHealth:
    sets: tuple[SetHealth, ...]  # ``default`` first
    verdict: HealthVerdict

    @property
    def default(self) -> Snapshot:
        return self.sets[0].snapshot


def take_fleet_health() -> FleetHealth:
    checks = run_app_checks()
    try:
        names = client_names()
    except BettorSenseConfigurationError:
        names = (DEFAULT_CLIENT,)  # the default snapshot carries the error
    snapshots = [take_snapshot(name, checks=checks if name == DEFAULT_CLIENT else ()) for name in names]
    sets = tuple(SetHealth(snapshot, evaluate(snapshot)) for snapshot in snapshots)
    return FleetHealth(sets=sets, verdict=combine(sets))


def combine(sets: tuple[SetHealth, ...]) -> HealthVerdict:
    reasons = [
        reason
        if one.client == DEFAULT_CLIENT
        else Reason(reason.status, reason.code, f"Credential set {one.client!r}: {reason.message}")
        for one in sets
        for reason in one.verdict.reasons
    ]
    reasons.sort(key=lambda reason: -reason.status.rank)
    return HealthVerdict(status=reasons[0].status if reasons else Status.OK, reasons=tuple(reasons))
