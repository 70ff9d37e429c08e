"""A Bettor Sense check for django-health-check, when that package is installed (it is optional).

django-health-check 4 takes its checks as view arguments::

    path("ht/", HealthCheckView.as_view(checks=[..., "bettorsense.health_check_backend.BettorSense"]))

With django-health-check 3 (``plugin_dir``), :func:`register` adds the check when ``health_check``
is in INSTALLED_APPS; :class:`bettorsense.apps.BettorSenseConfig` calls it at start-up.

``down`` fails the check; ``degraded`` is a warning (a failure unless the view sets
``warnings_as_errors=False``). Without django-health-check this module defines nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps

from bettorsense.health import rules
from bettorsense.health.fleet import take_fleet_health

logger = logging.getLogger(__name__)


def _verdict() -> tuple[rules.Status, str]:
    verdict = take_fleet_health().verdict
    return verdict.status, "; ".join(reason.message for reason in verdict.reasons)


try:  # django-health-check 4: dataclass checks with an async or sync run()
    import dataclasses

    from health_check.base import HealthCheck as _HealthCheckV4
    from health_check.exceptions import ServiceUnavailable as _Unavailable
    from health_check.exceptions import ServiceWarning as _Warning
except ImportError:  # pragma: no cover - depends on what is installed
    _HealthCheckV4 = None

if _HealthCheckV4 is not None:

    @dataclasses.dataclass
    class BettorSense(_HealthCheckV4):
        """Fails when Bettor Sense is down; warns when it is degraded."""

        def run(self) -> None:
            status, words = _verdict()
            if status is rules.Status.DOWN:
                raise _Unavailable(words)
            if status is rules.Status.DEGRADED:
                raise _Warning(words)


def _legacy_backend() -> Any:
    """django-health-check 3's backend class, or None when that API is not there."""
    try:
        from health_check.backends import BaseHealthCheckBackend
        from health_check.exceptions import ServiceUnavailable, ServiceWarning
    except ImportError:
        return None

    class BettorSenseBackend(BaseHealthCheckBackend):
        critical_service = True

        def check_status(self, subsets: Any = None) -> None:
            status, words = _verdict()
            if status is rules.Status.DOWN:
                self.add_error(ServiceUnavailable(words))
            elif status is rules.Status.DEGRADED:
                self.add_error(ServiceWarning(words))

        def identifier(self) -> str:
            return "BettorSense"

    return BettorSenseBackend


def register() -> bool:
    """Register the check with django-health-check 3's plugin registry; True if it was registered."""
    if not apps.is_installed("health_check"):
        return False
    try:
        from health_check.plugins import plugin_dir
    except ImportError:
        return False  # django-health-check 4: checks are view arguments, see the module docstring
    backend = _legacy_backend()
    if backend is None:
        return False
    plugin_dir.register(backend)
    logger.debug("Registered the Bettor Sense check with django-health-check")
    return True
