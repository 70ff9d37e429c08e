"""Remove history, reviews and access-log rows older than their retention settings.

Usage::

    python manage.py bettorsense_purge --dry-run   # count what would go
    python manage.py bettorsense_purge

The daily beat task ``bettorsense.tasks.purge_expired`` does the same. ``HISTORY_RETENTION``,
``REVIEW_RETENTION`` and ``ACCESS_LOG_RETENTION`` say how long each table keeps its rows (0: for ever).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bettorsense.privacy.retention import purge_expired


class Command(BaseCommand):
    help = "Remove history, reviews and access-log rows older than their retention settings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be removed; remove nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = options["dry_run"]
        verb = "would be removed" if dry_run else "removed"
        for outcome in purge_expired(dry_run=dry_run):
            if outcome.cutoff is None:
                self.stdout.write(f"{outcome.table:<34} kept for ever (retention 0)")
                continue
            self.stdout.write(
                f"{outcome.table:<34} {outcome.removed} {verb}: older than {outcome.cutoff:%Y-%m-%d %H:%M} UTC "
                f"({outcome.retention_days:g} days)"
            )
        self.stdout.write(self.style.SUCCESS("Dry run: nothing was removed." if dry_run else "Purge done."))
