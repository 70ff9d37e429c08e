"""App configuration: registers the system checks and the settings-change hook."""

from django.apps import AppConfig


class BettorSenseConfig(AppConfig):
    name = "bettorsense"
    verbose_name = "Bettor Sense"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bettorsense import (
            checks,  # noqa: F401  (registers checks and the setting_changed receiver)
            conf,  # noqa: F401  (registers checks and the setting_changed receiver)
        )
        from bettorsense.health_check_backend import register

        register()  # with django-health-check 3, when it is installed; a no-op otherwise
