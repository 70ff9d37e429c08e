"""The app's models: the health page's placeholder, and the local store of risk profiles.

``Health`` is a placeholder without a table, so that the health page has a place in the admin.

Like django-rq's ``Dashboard``: ``managed = False`` and only the ``view`` permission, so the admin
index lists "Bettor Sense > Health" for staff who hold ``bettorsense.view_health``, and its
changelist (see :mod:`bettorsense.admin`) renders the health page instead of rows.
"""

from __future__ import annotations

from django.db import models

from bettorsense import profiles
from bettorsense.profiles import ProfileSource, RiskBand


class Health(models.Model):
    class Meta:
        managed = False
        default_permissions = ("view",)
        # "Check now" costs a token request and an API call: more than viewing the page.
        permissions = [("run_probe", "Can run the live probe")]
        verbose_name = "health"
        verbose_name_plural = "health"

    def __str__(self) -> str:
        return "Bettor Sense health"


class PlayerRiskProfile(models.Model):
    """The local copy of one player's latest profile, kept current by the daily sync.

    The category scores are a JSON list on the row, not a child model: they are always read with
    the profile and never queried factor by factor, and one row per player keeps the page upsert a
    single statement.
    """

    bookmaker_id = models.PositiveIntegerField()
    sub_bookmaker_id = models.PositiveIntegerField()
    account_id = models.CharField(max_length=64)
    risk_score = models.FloatField()
    risk_category = models.SmallIntegerField(null=True, blank=True)
    band = models.SmallIntegerField(choices=RiskBand.choices, db_index=True)
    percentile = models.FloatField(null=True, blank=True)
    category_scores = models.JSONField(default=list)
    last_updated = models.DateTimeField(null=True, blank=True, db_index=True, help_text="At Sportradar.")
    fetched_at = models.DateTimeField(help_text="When the sync last fetched it.")
    changed_at = models.DateTimeField(db_index=True, help_text="When the score or band last changed here.")

    class Meta:
        default_permissions = ("view",)  # written by the sync only
        verbose_name = "player risk profile"
        constraints = [
            models.UniqueConstraint(
                fields=["bookmaker_id", "sub_bookmaker_id", "account_id"], name="bettorsense_profile_unique_account"
            ),
        ]
        indexes = [models.Index(fields=["risk_score"], name="bettorsense_profile_score")]

    def __str__(self) -> str:
        return f"{self.account_id} ({self.get_band_display()}, {self.risk_score:g})"

    def to_profile(self, source: ProfileSource = ProfileSource.STORE) -> profiles.RiskProfile:
        return profiles.RiskProfile(
            account_id=self.account_id,
            last_updated=self.last_updated,
            risk_score=self.risk_score,
            risk_category=self.risk_category,
            percentile=self.percentile,
            category_scores=tuple(
                profiles.CategoryScore(key=int(c["key"]), name=str(c["name"]), score=float(c["score"]))
                for c in self.category_scores
            ),
            band=RiskBand(self.band),
            source=ProfileSource(source),
        )


class RiskProfileChange(models.Model):
    """One change of a player's score or band, so a trend can be shown."""

    profile = models.ForeignKey(PlayerRiskProfile, on_delete=models.CASCADE, related_name="changes")
    risk_score = models.FloatField()
    band = models.SmallIntegerField(choices=RiskBand.choices)
    previous_score = models.FloatField(null=True, blank=True)
    previous_band = models.SmallIntegerField(choices=RiskBand.choices, null=True, blank=True)
    last_updated = models.DateTimeField(null=True, blank=True, help_text="At Sportradar.")
    recorded_at = models.DateTimeField()

    class Meta:
        default_permissions = ("view",)
        ordering = ["-recorded_at", "-id"]
        indexes = [models.Index(fields=["profile", "recorded_at"], name="bettorsense_change_profile")]

    def __str__(self) -> str:
        return f"{self.profile_id}: {self.previous_score} -> {self.risk_score:g}"


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Mode(models.TextChoices):
        INCREMENTAL = "incremental", "Incremental"
        FULL = "full", "Full"

    mode = models.CharField(max_length=12, choices=Mode.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING, db_index=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    bookmaker_id = models.PositiveIntegerField()
    sub_bookmaker_id = models.PositiveIntegerField()
    watermark_from = models.DateTimeField(null=True, blank=True, help_text="The changed-since filter used.")
    watermark_reached = models.DateTimeField(null=True, blank=True, help_text="The latest lastUpdated seen.")
    start_page = models.PositiveIntegerField(default=1)
    checkpoint_page = models.PositiveIntegerField(default=0, help_text="The last page committed.")
    pages = models.PositiveIntegerField(default=0)
    profiles_seen = models.PositiveIntegerField(default=0)
    profiles_created = models.PositiveIntegerField(default=0)
    profiles_changed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        default_permissions = ("view",)
        # A sync costs a walk of every page of the batch endpoint.
        permissions = [("start_sync", "Can start a sync")]
        ordering = ["-started_at", "-id"]
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"{self.get_mode_display()} sync {self.started_at:%Y-%m-%d %H:%M} ({self.status})"
