"""App configuration: registers the system checks, the settings-change hook and, if asked, the metrics."""

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
        register_metrics_if_asked()


def register_metrics_if_asked() -> None:
    """Our collectors into prometheus_client's default registry, when METRICS_DEFAULT_REGISTRY is on."""
    from bettorsense import metrics
    from bettorsense.conf import get_config
    from bettorsense.exceptions import BettorSenseConfigurationError

    try:
        wanted = get_config().metrics_default_registry
    except BettorSenseConfigurationError:
        return  # the checks report it
    if wanted and metrics.available():
        from bettorsense.metrics.exposition import register_into

        register_into()
