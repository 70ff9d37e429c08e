"""Show the fleet's shared access token, or renew it.

Usage::

    python manage.py bettorsense_token            # fingerprint, issued at, expires in, last renewal
    python manage.py bettorsense_token --refresh  # request a new token now, under the fleet lock
    python manage.py bettorsense_token --client brand-b  # the token of the credential set brand-b

Exits non-zero when there is no token (or the renewal failed). The token itself is never printed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bettorsense import telemetry, tokens
from bettorsense.cache import CacheUnavailable
from bettorsense.exceptions import BettorSenseError
from bettorsense.management.arguments import add_client_argument, client_config
from bettorsense.redaction import mask, safe_url


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class Command(BaseCommand):
    help = "Show the shared Bettor Sense access token (fingerprint only), or renew it with --refresh."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--refresh", action="store_true", help="Request a new token now.")
        add_client_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        config = client_config(options["client"])
        manager = tokens.get_token_manager(config)
        self.stdout.write(f"Set:         {config.client}")
        self.stdout.write(f"Environment: {config.environment}  audience: {config.audience}")
        self.stdout.write(f"Token URL:   {safe_url(config.token_url)}  client: {mask(config.client_id)}")
        if options["refresh"]:
            try:
                renewed = manager.force_refresh(origin="manual")
            except BettorSenseError as err:
                raise CommandError(f"Renewal failed: {err}") from err
            self.stdout.write(self.style.SUCCESS(f"Renewed: {renewed.fingerprint}"))
        token = manager.peek()
        if token is None:
            self.stdout.write(self.style.WARNING("Token:       none cached"))
        else:
            self.stdout.write(f"Token:       {token.fingerprint}")
            self.stdout.write(f"Issued at:   {_when(token.issued_at)}")
            left = token.seconds_left(manager.clock.now())  # the expiry is on the token server's clock
            self.stdout.write(f"Expires in:  {left:.0f} s (at {_when(token.expires_at)})")
        try:
            fleet = telemetry.read_token_state(config)
        except CacheUnavailable as err:
            raise CommandError(f"Cache {config.cache_alias!r} unavailable: {err}") from err
        renewal = fleet.last_renewal
        if renewal is None:
            self.stdout.write("Last renewal: none recorded")
        else:
            line = (
                f"Last renewal: {_when(renewal.at)} by {renewal.origin}, {renewal.outcome}, "
                f"{renewal.duration * 1000:.0f} ms"
            )
            style = self.style.SUCCESS if renewal.outcome == "ok" else self.style.ERROR
            self.stdout.write(style(line))
        if fleet.last_error is not None:
            self.stdout.write(self.style.ERROR(f"Last error:  {_when(fleet.last_error.at)} {fleet.last_error.error}"))
        self.stdout.write(f"Beat:        last ran {_when(fleet.beat_last_run)} ({fleet.beat_last_outcome or '-'})")
        self.stdout.write(
            f"Token requests: {fleet.requests_last_hour} in the last hour, {fleet.requests_last_day} in 24 h"
        )
        if token is None:
            raise CommandError("No token is cached; run with --refresh, or start Celery beat.")
