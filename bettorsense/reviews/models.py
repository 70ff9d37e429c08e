"""The interaction record (``Review``) and the review queue's admin placeholder (``ReviewQueue``).

A ``Review`` is append-only: ``save`` only inserts and ``delete`` refuses, so a record once written
is never changed by the app; a correction is a new ``Review`` whose ``corrects`` names the old one.
The account, the band and the score it answered are copied onto the row, so the record still says
what it was about after the history it points at has expired. Bulk ``QuerySet.update``/``delete``
are left to the retention and erasure commands, which follow their own settings; ``corrects`` is
``RESTRICT``, so a corrected review is deleted only together with its corrections.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models

from bettorsense.models import PlayerRiskProfile, RiskProfileChange
from bettorsense.profiles import RiskBand

NOTE_MAX_LENGTH = 2000


class AppendOnlyError(RuntimeError):
    """A recorded review was about to be changed or deleted; record a correction instead."""


class Outcome(models.TextChoices):
    """The vendor UI's "Player Status" values, which its API does not expose."""

    CLEARED = "cleared", "Cleared"
    NEEDS_REVIEW = "needs-review", "Needs review"
    INTERVENTION = "intervention", "RG intervention"


class Method(models.TextChoices):
    """The intervention methods of the vendor's Intervention Inform message, with its values."""

    POP_UP = "pop-up", "Pop-up"
    RG_MESSAGING = "rg-messaging", "RG messaging"
    EMAIL = "email", "Email"
    CARE_CALL = "care-call", "Care call"
    LIMITS_UPDATE = "limits-update", "Limits update"
    OTHER = "other", "Other"


class Review(models.Model):
    """One outcome recorded by a member of staff against one recorded change of a player's risk."""

    change = models.ForeignKey(
        RiskProfileChange,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reviews",
        help_text="The recorded change this review answers (kept while the review is; empty after an erasure).",
    )
    profile = models.ForeignKey(
        PlayerRiskProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="reviews"
    )
    account_id = models.CharField(max_length=64, db_index=True)
    bookmaker_id = models.PositiveIntegerField()
    sub_bookmaker_id = models.PositiveIntegerField()
    band = models.SmallIntegerField(choices=RiskBand.choices, help_text="The band of the change answered.")
    risk_score = models.FloatField(help_text="The score of the change answered.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    method = models.CharField(max_length=16, choices=Method.choices, blank=True)
    model_initiated = models.BooleanField(
        default=False, help_text="The intervention was started by the model's signal, not by a person."
    )
    note = models.TextField(blank=True, validators=[MaxLengthValidator(NOTE_MAX_LENGTH)])
    corrects = models.ForeignKey("self", on_delete=models.RESTRICT, null=True, blank=True, related_name="corrections")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    recorded_by_username = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    recorded_at = models.DateTimeField(db_index=True)

    class Meta:
        app_label = "bettorsense"
        default_permissions = ("view",)
        permissions = [
            ("record_review", "Can record a review of a player's risk"),
            ("export_reviews", "Can export reviews and interactions"),
        ]
        ordering = ["-recorded_at", "-id"]
        indexes = [models.Index(fields=["profile", "change"], name="bettorsense_review_profile")]

    def __str__(self) -> str:
        return f"Review {self.pk}: {self.get_outcome_display()}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AppendOnlyError(f"Review {self.pk} is recorded and cannot change; record a correction instead.")
        kwargs["force_insert"] = True  # a new row, even when a pk was set by hand
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"Review {self.pk} is recorded and cannot be deleted.")

    def clean(self) -> None:
        if self.outcome == Outcome.INTERVENTION:
            if not self.method:
                raise ValidationError({"method": "An intervention needs its method."})
            if self.method == Method.OTHER and not self.note.strip():
                raise ValidationError({"note": 'Say in the note what "other" was.'})
        else:
            if self.method:
                raise ValidationError({"method": "Only an intervention has a method."})
            if self.model_initiated:
                raise ValidationError({"model_initiated": "Only an intervention is model-initiated."})
        if self.corrects is not None and (
            self.corrects.account_id,
            self.corrects.bookmaker_id,
            self.corrects.sub_bookmaker_id,
        ) != (self.account_id, self.bookmaker_id, self.sub_bookmaker_id):
            raise ValidationError({"corrects": "A correction is about the same account as the review it corrects."})


class ReviewQueue(models.Model):
    """The queue page's place in the admin, without a table (like ``Health``).

    It has no permission of its own: the queue shows risk data, so it is open to staff who hold
    ``bettorsense.view_playerriskprofile`` (see :mod:`bettorsense.reviews.admin`).
    """

    class Meta:
        app_label = "bettorsense"
        managed = False
        default_permissions = ()
        verbose_name = "review queue"
        verbose_name_plural = "review queue"

    def __str__(self) -> str:
        return "Review queue"
