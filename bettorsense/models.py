"""The app's models: the health page's placeholder, the local store of risk profiles and its history.

``Health`` is a placeholder without a table, so that the health page has a place in the admin.

Like django-rq's ``Dashboard``: ``managed = False`` and only the ``view`` permission, so the admin
index lists "Bettor Sense > Health" for staff who hold ``bettorsense.view_health``, and its
changelist (see :mod:`bettorsense.admin`) renders the health page instead of rows.
"""

from __future__ import annotations

from django.db import models

from bettorsense import factors, profiles
from bettorsense.conf import CLIENT_NAME_MAX_LENGTH, DEFAULT_CLIENT
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

    client = models.CharField(
        max_length=CLIENT_NAME_MAX_LENGTH,
        default=DEFAULT_CLIENT,
        verbose_name="credential set",
        help_text="The credential set (brand) it was fetched with: a key of BETTORSENSE['CLIENTS'], or default.",
    )
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
            # The account id leads: a page's look-up (account_id = ANY(...) for one pair) is then always
            # an index condition. With the pair leading, a pair the statistics did not know yet (a new
            # brand's first load) was planned as a scan of all its rows per page, filtered.
            models.UniqueConstraint(
                fields=["account_id", "bookmaker_id", "sub_bookmaker_id"], name="bettorsense_profile_unique_account"
            ),
        ]
        indexes = [
            models.Index(fields=["risk_score"], name="bettorsense_profile_score"),
            # Not db_index on the field: on PostgreSQL that adds a second, LIKE-pattern index nothing uses.
            models.Index(fields=["client"], name="bettorsense_profile_client"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} ({self.get_band_display()}, {self.risk_score:g})"

    def to_profile(self, source: ProfileSource = ProfileSource.STORE) -> profiles.RiskProfile:
        return profiles.RiskProfile(
            account_id=self.account_id,
            last_updated=self.last_updated,
            risk_score=self.risk_score,
            risk_category=self.risk_category,
            percentile=self.percentile,
            category_scores=factors.from_json(self.category_scores),
            band=RiskBand(self.band),
            source=ProfileSource(source),
        )


class RiskProfileChange(models.Model):
    """What the vendor said about a player when the score or band changed: "what did we know, when".

    One row per vendor version of a profile: ``(profile, last_updated)`` is unique, so a second run
    that reads the same version records nothing, and only the run that inserted a row
    (``sync_run``) sends its signal. ``signal_pending`` marks a signal that is due: it is cleared
    when the signal is sent, and a row left pending by a run that died is sent by the pair's next run.
    ``previous_band`` is None for a player's first row.
    """

    # No index of its own: the two below lead with the profile.
    profile = models.ForeignKey(PlayerRiskProfile, on_delete=models.CASCADE, related_name="changes", db_index=False)
    risk_score = models.FloatField()
    band = models.SmallIntegerField(choices=RiskBand.choices)
    risk_category = models.SmallIntegerField(null=True, blank=True)
    percentile = models.FloatField(null=True, blank=True)
    category_scores = models.JSONField(default=list, help_text="The factor scores, as the vendor sent them.")
    previous_score = models.FloatField(null=True, blank=True)
    previous_band = models.SmallIntegerField(choices=RiskBand.choices, null=True, blank=True)
    last_updated = models.DateTimeField(null=True, blank=True, help_text="At Sportradar.")
    recorded_at = models.DateTimeField()
    sync_run = models.ForeignKey(
        "SyncRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="changes", help_text="Recorded by."
    )
    signal_pending = models.BooleanField(default=False, help_text="risk_band_changed is due and not sent yet.")

    class Meta:
        default_permissions = ("view",)
        ordering = ["-recorded_at", "-id"]
        indexes = [
            models.Index(fields=["profile", "recorded_at"], name="bettorsense_change_profile"),
            models.Index(fields=["id"], condition=models.Q(signal_pending=True), name="bettorsense_change_pending"),
        ]
        constraints = [
            # NULLs are distinct on both databases: a version without an update time is not deduplicated
            # here, only by the one running sync per bookmaker pair.
            models.UniqueConstraint(fields=["profile", "last_updated"], name="bettorsense_change_once"),
        ]

    def __str__(self) -> str:
        return f"{self.profile_id}: {self.previous_score} -> {self.risk_score:g}"

    @property
    def is_band_move(self) -> bool:
        """A first sighting (no previous band) or a band that moved: what ``risk_band_changed`` reports."""
        return self.previous_band is None or self.previous_band != self.band


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
    client = models.CharField(
        max_length=CLIENT_NAME_MAX_LENGTH,
        default=DEFAULT_CLIENT,
        db_index=True,
        verbose_name="credential set",
        help_text="The credential set (brand) that ran it: a key of BETTORSENSE['CLIENTS'], or default.",
    )
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
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Its last committed page (or its start).")
    initial_load = models.BooleanField(default=False, help_text="Before the bookmaker pair's first success.")
    signals_sent = models.PositiveIntegerField(default=0, help_text="risk_band_changed sent for its changes.")

    class Meta:
        default_permissions = ("view",)
        # A sync costs a walk of every page of the batch endpoint.
        permissions = [("start_sync", "Can start a sync")]
        ordering = ["-started_at", "-id"]
        get_latest_by = "started_at"
        constraints = [
            # One running run per bookmaker pair, enforced by the database (PostgreSQL and SQLite both
            # have partial unique indexes); the cache lock is only the first, cheaper gate.
            models.UniqueConstraint(
                fields=["bookmaker_id", "sub_bookmaker_id"],
                condition=models.Q(status="running"),
                name="bettorsense_syncrun_one_running",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} sync {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


from bettorsense.privacy.models import AccessRecord  # noqa: E402,F401  (the privacy subpackage's table)
from bettorsense.reviews.models import Review, ReviewQueue  # noqa: E402, F401  (registers the reviews' models)
