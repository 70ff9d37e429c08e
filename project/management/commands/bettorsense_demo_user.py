"""Create (or reset) the demo's staff user, who can open the Bettor Sense health page.

Usage::

    python manage.py bettorsense_demo_user                    # user "bettorsense-demo"
    python manage.py bettorsense_demo_user --username alice

Idempotent: each run sets a new generated password and prints it once. The user is staff, not a
superuser, and holds ``bettorsense.view_health``, ``bettorsense.run_probe`` ("Check now") and
``bettorsense.view_syncrun`` with ``bettorsense.start_sync`` ("Start an incremental sync"), and
for the review queue ``bettorsense.view_playerriskprofile`` (the risk data), ``view_review``,
``record_review`` and ``export_reviews``. For demos and local set-ups only: it belongs to the demo
project, not to the app, so no install of bettorsense ships it.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

DEFAULT_USERNAME = "bettorsense-demo"
DEMO_PERMISSIONS = (
    "view_health",
    "run_probe",
    "view_syncrun",
    "start_sync",
    "view_playerriskprofile",
    "view_review",
    "record_review",
    "export_reviews",
)


class Command(BaseCommand):
    help = "Create or reset the demo staff user for the Bettor Sense health page, and print its new password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=DEFAULT_USERNAME, help=f"Default: {DEFAULT_USERNAME}.")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        with transaction.atomic():
            user, created = user_model._default_manager.get_or_create(**{user_model.USERNAME_FIELD: username})
            user.is_staff = True
            user.is_active = True
            user.set_password(password)
            user.save()
            user.user_permissions.add(
                *Permission.objects.filter(content_type__app_label="bettorsense", codename__in=DEMO_PERMISSIONS)
            )
        verb = "Created" if created else "Reset the password of"
        self.stdout.write(self.style.SUCCESS(f"{verb} the demo staff user {username!r}."))
        self.stdout.write(f"  username: {username}")
        self.stdout.write(f"  password: {password}")
        self.stdout.write("  (shown once; run this command again for a new one)")
