"""The access log: one append-only row per look at a player's risk data."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AccessRecord(models.Model):
    """One look at one player's risk data: who, when, which account, through what, and why.

    ``username`` is copied from the user when the row is written, so the row still says who looked
    after the user is deleted (``user`` then becomes null).
    """

    class Through(models.TextChoices):
        PROFILE = "profile", "Profile page"
        HISTORY = "history", "History"
        QUEUE = "queue", "Review queue"
        COMMAND = "command", "Management command"
        EXPORT = "export", "Export"
        HOST = "host", "Host code"

    at = models.DateTimeField("when", default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, help_text="As it was when the row was written.")
    account_id = models.CharField(max_length=64)  # indexed with `at`, below
    through = models.CharField(max_length=10, choices=Through.choices)
    purpose = models.CharField(max_length=200, blank=True)

    class Meta:
        default_permissions = ("view",)  # written by the app only, never by hand
        verbose_name = "access record"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["account_id", "at"], name="bettorsense_access_account")]

    def __str__(self) -> str:
        return f"{self.username or 'unknown'} looked at {self.account_id} ({self.get_through_display()})"
