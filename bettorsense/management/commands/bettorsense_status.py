"""Print the health of the Bettor Sense integration: the admin health page, for a terminal.

Usage::

    python manage.py bettorsense_status           # status, reasons, token, beat, service
    python manage.py bettorsense_status --json    # the health endpoint's full JSON body
    python manage.py bettorsense_status --probe   # also get a token and make one API call now
    python manage.py bettorsense_status --probe --client brand-b  # the live check with the set brand-b

Each credential set gets a line (``Set brand-b: OK ...``); the details shown are the ``default``
set's, and ``--json`` has every set's under ``clients``.

Exits 0 when the status is ok or degraded, and 1 when it is down (or the probe fails), so cron
jobs and container probes can use it. No secret is ever printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bettorsense.conf import DEFAULT_CLIENT
from bettorsense.health import probe, report
from bettorsense.health.fleet import FleetHealth, take_fleet_health
from bettorsense.health.rules import HealthVerdict, Snapshot, Status
from bettorsense.management.arguments import add_client_argument, client_config


class Command(BaseCommand):
    help = "Show whether the Bettor Sense integration is ok, degraded or down; exits 1 when down."
    # The system checks are part of the report: a failing one must not stop the command first.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the health JSON body.")
        parser.add_argument("--probe", action="store_true", help="Also get a token and make one API call now.")
        add_client_argument(parser)  # the set --probe checks

    def handle(self, *args: Any, **options: Any) -> None:
        client = client_config(options["client"]).client if options["probe"] else DEFAULT_CLIENT
        result = probe.run_probe(client) if options["probe"] else None
        fleet = take_fleet_health()
        taken, verdict = fleet.default, fleet.verdict
        if options["json"]:
            body = report.fleet_json(fleet, full=True)
            if result is not None:
                body["probe"] = result.to_json()
            self.stdout.write(json.dumps(body, indent=2))
        else:
            self._print(taken, verdict)
            self._print_sets(fleet)
            if result is not None:
                self._print_probe(result)
        if verdict.status is Status.DOWN:
            raise CommandError(
                "Bettor Sense is down: " + "; ".join(r.code for r in verdict.reasons if r.status is Status.DOWN)
            )
        if result is not None and not result.ok:
            raise CommandError("The live check failed.")

    def _style(self, status: Status) -> Callable[[str], str]:
        return {Status.OK: self.style.SUCCESS, Status.DEGRADED: self.style.WARNING}.get(status, self.style.ERROR)

    def _print(self, taken: Snapshot, verdict: HealthVerdict) -> None:
        out, now = self.stdout.write, taken.taken_at
        out(self._style(verdict.status)(f"Bettor Sense: {report.STATUS_WORDS[verdict.status].upper()}"))
        for reason in verdict.reasons:
            out(self._style(reason.status)(f"  [{reason.status}] {reason.message}"))
        config = taken.config
        if config is not None:
            out(f"Environment:   {config.environment}  audience: {config.audience}")
            out(f"Token URL:     {config.token_url}")
            out(f"API URL:       {config.api_url}")
            out(
                f"Client:        {config.client_id or '(not set)'}  secret: {config.client_secret_fingerprint}  "
                f"bookmaker: {config.bookmaker_id} / {config.sub_bookmaker_id}"
            )
        if taken.cache is not None:
            cache = taken.cache
            sharing = "unreachable" if not cache.reachable else ("shared" if cache.shared else "NOT shared")
            out(f"Cache:         {cache.alias} ({cache.backend}), {sharing}")
        token = taken.token
        if token is None:
            out("Token:         none")
        else:
            out(f"Token:         {token.fingerprint}, issued {report.when(token.issued_at, now)}")
            out(f"Expires in:    {report.duration(token.expires_at - now)} (at {report.iso(token.expires_at)})")
        fleet = taken.fleet
        if fleet is not None:
            renewal = fleet.last_renewal
            if renewal is not None:
                out(
                    f"Last renewal:  {report.when(renewal.at, now)} by {renewal.origin}, "
                    f"{'succeeded' if renewal.succeeded else 'failed'}, {renewal.duration * 1000:.0f} ms"
                )
            if fleet.last_error is not None:
                resolved = "  (resolved: a renewal succeeded since)" if taken.last_error_resolved else ""
                out(f"Last error:    {report.when(fleet.last_error.at, now)}{resolved} {fleet.last_error.error}")
            out(f"Renewals:      {fleet.renewals_last_hour} in the last hour, {fleet.renewals_last_day} in 24 h")
            out(f"Requests:      {fleet.requests_last_hour} in the last hour, {fleet.requests_last_day} in 24 h")
            outcome = report.beat_outcome_words(fleet.beat_last_outcome)
            out(
                f"Beat:          last ran {report.when(fleet.beat_last_run, now)}"
                + (f": {outcome}" if outcome else "")
                + ("  STALE" if taken.beat_stale else "")
            )
        out(f"Beat schedule: {report.schedule_words(taken)}")
        out(f"Sync:          {report.sync_words(taken)}")
        out(f"Breaker:       {taken.breaker or 'unknown'}")
        call = taken.last_api_call
        if call is not None:
            out(
                f"Last API call: {report.outcome_words(call.outcome)} (HTTP {call.status}) "
                f"in {call.latency * 1000:.0f} ms, {report.when(call.at, now)}"
            )
        for check in taken.checks:
            out(f"Check:         {check.id} ({check.level}) {check.message}")

    def _print_sets(self, fleet: FleetHealth) -> None:
        """One line per credential set: its status, client id, bookmaker ids, token and breaker."""
        out = self.stdout.write
        for one in fleet.sets:
            taken, config, token = one.snapshot, one.snapshot.config, one.snapshot.token
            line = f"Set {one.client}: {report.STATUS_WORDS[one.verdict.status].upper()}"
            if config is not None:
                left = (
                    f"{token.fingerprint} ({report.duration(taken.token_expires_in or 0.0)} left)" if token else "none"
                )
                line += (
                    f"  client {config.client_id or '(not set)'}, bookmaker {config.bookmaker_id} / "
                    f"{config.sub_bookmaker_id}  token {left}  breaker {taken.breaker or 'unknown'}"
                )
            out(self._style(one.verdict.status)(line))

    def _print_probe(self, result: probe.ProbeResult) -> None:
        self.stdout.write(
            self._style(Status.OK if result.ok else Status.DOWN)(
                f"Live check:    {'passed' if result.ok else 'FAILED'}"
            )
        )
        for step in result.steps:
            self.stdout.write(
                f"  {step.name:<6} {'ok' if step.ok else 'failed':<7} {step.duration_ms:>8.1f} ms  {step.detail}"
            )
