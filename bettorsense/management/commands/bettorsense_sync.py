"""Sync the players' risk profiles into the local store.

Usage::

    python manage.py bettorsense_sync                    # incremental: changed since the last run's watermark
    python manage.py bettorsense_sync --full             # every profile, ignoring the watermark
    python manage.py bettorsense_sync --since 2026-11-20 # changed on or after this date (or date-time)
    python manage.py bettorsense_sync --client brand-b   # with the credential set brand-b and its bookmaker ids

On a terminal it prints a progress line (pages and players) at most every few seconds, each a whole
line so that log lines never run into it; elsewhere it prints only the summary.
Exits non-zero when the run fails or another run holds the lock; a failed run resumes next time.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bettorsense.exceptions import BettorSenseError, SyncRefused
from bettorsense.management.arguments import add_client_argument, client_config, since_argument
from bettorsense.models import SyncRun
from bettorsense.sync import run_sync

#: Seconds between two progress lines on a terminal.
PROGRESS_EVERY = 2.0


class Command(BaseCommand):
    help = "Sync Bettor Sense risk profiles into the local store (incremental by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--full", action="store_true", help="Ignore the watermark: fetch every profile.")
        parser.add_argument(
            "--since", type=since_argument, help="Only profiles changed on or after this ISO-8601 date or date-time."
        )
        parser.add_argument("--bookmaker", type=int, help="Bookmaker id (default: settings).")
        parser.add_argument("--sub-bookmaker", type=int, help="Sub-bookmaker id (default: settings).")
        add_client_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        client = client_config(options["client"]).client
        if options["full"] and options["since"]:
            raise CommandError("Give --full or --since, not both.")
        since = options["since"]
        on_terminal = self.stdout.isatty()
        last_line = -PROGRESS_EVERY

        def progress(run: SyncRun) -> None:
            nonlocal last_line
            if on_terminal and time.monotonic() - last_line >= PROGRESS_EVERY:
                last_line = time.monotonic()
                self.stdout.write(
                    f"page {run.checkpoint_page}: {run.profiles_seen} players, "
                    f"{run.profiles_created} new, {run.profiles_changed} changed"
                )

        try:
            run = run_sync(
                full=options["full"],
                since=since,
                bookmaker_id=options["bookmaker"],
                sub_bookmaker_id=options["sub_bookmaker"],
                progress=progress,
                client=client,
            )
        except (BettorSenseError, SyncRefused) as err:
            raise CommandError(f"Sync failed: {type(err).__name__}: {err}") from err
        self.stdout.write(
            self.style.SUCCESS(
                f"{run.get_mode_display()} sync {run.status}: {run.pages} pages, {run.profiles_seen} players, "
                f"{run.profiles_created} new, {run.profiles_changed} changed, {run.signals_sent} signalled; "
                f"watermark {run.watermark_reached}"
            )
        )
