"""Print one player's risk profile, or stream every profile as JSON lines.

Usage::

    python manage.py bettorsense_profile player_1            # one profile, readable
    python manage.py bettorsense_profile player_1 --json     # one profile as JSON
    python manage.py bettorsense_profile --all               # every profile, one JSON object a line
    python manage.py bettorsense_profile --all --since 2026-11-27
    python manage.py bettorsense_profile player_1 --client brand-b  # with the credential set brand-b

Exits non-zero with the error's message (never a secret) when the API refuses or fails.

Each profile printed is recorded in the access log (``through="command"``) under the operating
system's user name, with ``--purpose`` if given.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bettorsense.exceptions import BettorSenseError
from bettorsense.management.arguments import add_client_argument, client_config, since_argument
from bettorsense.privacy.access import Through, record_accesses
from bettorsense.profiles import RiskProfile
from bettorsense.services import get_player_risk_profile, iter_risk_profile_pages


class Command(BaseCommand):
    help = "Print a player's Bettor Sense risk profile, or stream all profiles with --all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account_id", nargs="?", help="The operator's account id.")
        parser.add_argument("--all", action="store_true", help="Stream every profile as JSON lines.")
        parser.add_argument(
            "--since", type=since_argument, help="With --all: only profiles changed on or after this date."
        )
        parser.add_argument("--fresh", action="store_true", help="Skip the profile cache.")
        parser.add_argument("--json", action="store_true", help="Print the profile as JSON.")
        parser.add_argument("--bookmaker", type=int, help="Bookmaker id (default: settings).")
        parser.add_argument("--sub-bookmaker", type=int, help="Sub-bookmaker id (default: settings).")
        parser.add_argument("--purpose", default="", help="Why you look, kept in the access log.")
        add_client_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        client = client_config(options["client"]).client
        ids = {"bookmaker_id": options["bookmaker"], "sub_bookmaker_id": options["sub_bookmaker"]}
        if options["all"] == bool(options["account_id"]):
            raise CommandError("Give an ACCOUNT_ID, or --all.")
        try:
            if options["all"]:
                for _, page in iter_risk_profile_pages(changed_since=options["since"], client=client, **ids):
                    self._record([profile.account_id for profile in page], options["purpose"])
                    for profile in page:
                        self.stdout.write(json.dumps(profile.to_json()))
                return
            profile = get_player_risk_profile(options["account_id"], fresh=options["fresh"], client=client, **ids)
        except BettorSenseError as err:
            raise CommandError(f"{type(err).__name__}: {err}") from err
        self._record([profile.account_id], options["purpose"])
        if options["json"]:
            self.stdout.write(json.dumps(profile.to_json(), indent=2))
        else:
            self._print(profile)

    def _record(self, accounts: list[str], purpose: str) -> None:
        record_accesses(user=None, account_ids=accounts, through=Through.COMMAND, purpose=purpose, username=_os_user())

    def _print(self, profile: RiskProfile) -> None:
        updated = profile.last_updated.isoformat() if profile.last_updated else "unknown"
        self.stdout.write(f"Player:      {profile.account_id}")
        self.stdout.write(f"Risk score:  {profile.risk_score:g}  ({profile.band.label})")
        self.stdout.write(f"Category:    {profile.risk_category}  percentile: {profile.percentile}")
        self.stdout.write(f"Updated:     {updated}  source: {profile.source}")
        for factor in profile.category_scores:
            self.stdout.write(f"  {factor.key:>2} {factor.name:<30} {factor.score:+.4f}")


def _os_user() -> str:
    """Who runs the command, as the operating system names them (no user database: "unknown")."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return "os:unknown"
