"""The access log in the admin: read-only, for holders of ``bettorsense.view_accessrecord``.

"Who looked at account X, and when" is one search (the exact account id) or one query string,
``?account_id=X``.
"""

from __future__ import annotations

from django.contrib import admin

from bettorsense.privacy.models import AccessRecord
from bettorsense.read_only_admin import ReadOnlyAdmin


@admin.register(AccessRecord)
class AccessRecordAdmin(ReadOnlyAdmin):
    """Append-only: rows are written by the app's screens and commands, never added, changed or deleted here."""

    list_display = ("at", "account_id", "username", "through", "purpose")
    list_filter = ("through", "at")
    search_fields = ("=account_id", "=username")
    search_help_text = "The exact account id (or user name): every look at that player, newest first."
    date_hierarchy = "at"
    fields = ("at", "account_id", "username", "user", "through", "purpose")
    readonly_fields = fields
    list_select_related = False
    show_full_result_count = False
