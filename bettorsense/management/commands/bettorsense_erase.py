"""Erase one player: stored profile, history, cached copies, and reviews and access-log rows by setting.

Usage::

    python manage.py bettorsense_erase player_1 --dry-run   # what would go, changing nothing
    python manage.py bettorsense_erase player_1
    python manage.py bettorsense_erase player_1 --bookmaker 7 --sub-bookmaker 8   # one more pair's cache

Reports, per table, what it found, removed, pseudonymised and kept (``ERASE_REVIEWS``,
``ERASE_ACCESS_LOG``), per cache alias what it removed, and what it removed from this process's
profile memo; the memo of every other process (web workers, Celery workers) holds a copy for at
most ``PROFILE_MEMO_TTL`` more. Exits non-zero when nothing could be done (a refused erasure) or a
cache alias could not be cleared (run it again once the cache is back).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bettorsense.exceptions import BettorSenseError
from bettorsense.privacy.erasure import Erasure, erase_player
from bettorsense.privacy.pseudonyms import log_name

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Erase a player's stored risk data and cached copies; reviews and access log by setting."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account_id", help="The operator's account id.")
        parser.add_argument("--dry-run", action="store_true", help="Report what would be erased; change nothing.")
        parser.add_argument("--bookmaker", type=int, help="With --sub-bookmaker: one more pair whose cache to clear.")
        parser.add_argument("--sub-bookmaker", type=int, help="See --bookmaker.")

    def handle(self, *args: Any, **options: Any) -> None:
        extra = options["bookmaker"], options["sub_bookmaker"]
        if (extra[0] is None) != (extra[1] is None):
            raise CommandError("Give --bookmaker and --sub-bookmaker together.")
        pairs = [(int(extra[0]), int(extra[1]))] if extra[0] is not None and extra[1] is not None else []
        try:
            erasure = erase_player(options["account_id"], pairs=pairs, dry_run=options["dry_run"])
        except BettorSenseError as err:
            raise CommandError(f"{type(err).__name__}: {err}") from err
        self._report(erasure)
        if not erasure.dry_run:
            logger.info("Player %s erased (complete: %s)", log_name(options["account_id"]), erasure.complete)
        if not erasure.complete:
            raise CommandError("Some cache aliases could not be cleared; run the erasure again once they answer.")

    def _report(self, erasure: Erasure) -> None:
        verb = "would be" if erasure.dry_run else "were"
        self.stdout.write("Tables (dry run: nothing changed):" if erasure.dry_run else "Tables:")
        for t in erasure.tables:
            self.stdout.write(
                f"  {t.table:<34} {t.policy:<13} found {t.found}, removed {t.removed}, "
                f"pseudonymised {t.pseudonymised}, kept {t.kept}"
            )
        self.stdout.write("Caches:")
        for c in erasure.caches:
            if c.error:
                self.stdout.write(self.style.ERROR(f"  {c.alias:<34} unavailable ({c.error}): nothing removed"))
                continue
            how = "scanned" if c.scanned else "named keys only (the backend cannot be scanned)"
            self.stdout.write(f"  {c.alias:<34} found {c.found}, removed {c.removed}; {how}")
        removed = 0 if erasure.dry_run else erasure.memo
        self.stdout.write(f"  {'this process memo':<34} found {erasure.memo}, removed {removed}")
        if erasure.memo_ttl:
            self.stdout.write(
                f"Other processes' memo copies (web and Celery workers) are served for at most "
                f"PROFILE_MEMO_TTL ({erasure.memo_ttl:g} s) more; nothing reaches them from here."
            )
        if erasure.complete:
            self.stdout.write(self.style.SUCCESS(f"The player's data {verb} erased as reported."))
