"""Sync the players' risk profiles into the local store.

Usage::

    python manage.py bettorsense_sync                    # incremental: changed since the last run's watermark
    python manage.py bettorsense_sync --full             # every profile, ignoring the watermark
    python manage.py bettorsense_sync --since 2026-11-20 # changed on or after this date (or date-time)

On a terminal it shows a progress line (pages and players); elsewhere it prints only the summary.
Exits non-zero when the run fails or another run holds the lock; a failed run resumes next time.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bettorsense.exceptions import BettorSenseError, SyncRefused
from bettorsense.management.arguments import since_argument
from bettorsense.models import SyncRun
from bettorsense.sync import run_sync


class Command(BaseCommand):
    help = "Sync Bettor Sense risk profiles into the local store (incremental by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--full", action="store_true", help="Ignore the watermark: fetch every profile.")
        parser.add_argument(
            "--since", type=since_argument, help="Only profiles changed on or after this ISO-8601 date or date-time."
        )
        parser.add_argument("--bookmaker", type=int, help="Bookmaker id (default: settings).")
        parser.add_argument("--sub-bookmaker", type=int, help="Sub-bookmaker id (default: settings).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["full"] and options["since"]:
            raise CommandError("Give --full or --since, not both.")
        since = options["since"]
        on_terminal = self.stdout.isatty()

        def progress(run: SyncRun) -> None:
            if on_terminal:
                self.stdout.write(
                    f"\rpage {run.checkpoint_page}: {run.profiles_seen} players, "
                    f"{run.profiles_created} new, {run.profiles_changed} changed",
                    ending="",
                )
                self.stdout.flush()

        try:
            run = run_sync(
                full=options["full"],
                since=since,
                bookmaker_id=options["bookmaker"],
                sub_bookmaker_id=options["sub_bookmaker"],
                progress=progress,
            )
        except (BettorSenseError, SyncRefused) as err:
            if on_terminal:
                self.stdout.write("")
            raise CommandError(f"Sync failed: {type(err).__name__}: {err}") from err
        if on_terminal:
            self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"{run.get_mode_display()} sync {run.status}: {run.pages} pages, {run.profiles_seen} players, "
                f"{run.profiles_created} new, {run.profiles_changed} changed; watermark {run.watermark_reached}"
            )
        )
