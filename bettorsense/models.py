"""The app's only model: a placeholder without a table, so that the health page has a place in the admin.

Like django-rq's ``Dashboard``: ``managed = False`` and only the ``view`` permission, so the admin
index lists "Bettor Sense > Health" for staff who hold ``bettorsense.view_health``, and its
changelist (see :mod:`bettorsense.admin`) renders the health page instead of rows.
"""

from __future__ import annotations

from django.db import models


class Health(models.Model):
    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "health"
        verbose_name_plural = "health"

    def __str__(self) -> str:
        return "Bettor Sense health"
