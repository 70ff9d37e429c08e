"""Metrics in Prometheus's format, recorded when ``prometheus_client`` is installed.

Install the extra (``pip install bettorsense[prometheus]``). Without it every function here is a
no-op and the metrics view answers 404: the app imports and works the same.

The recording functions are one call each at the places that already record telemetry. No label
holds an account id: the API's endpoint is its route template (:mod:`bettorsense.client.routes`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec

from bettorsense.cache import RateLimitedWarning

if TYPE_CHECKING:
    from bettorsense.conf import Config

try:
    from bettorsense.metrics import instruments

    ENABLED = True
except ImportError:  # prometheus_client is an optional extra
    ENABLED = False

logger = logging.getLogger(__name__)
_warn = RateLimitedWarning(logger)
P = ParamSpec("P")

__all__ = ["api_request", "available", "band_changed", "profiles_synced", "set_name", "status_class", "token_request"]


def available() -> bool:
    return ENABLED


def set_name(config: Config) -> str:
    """The ``set`` label: the credential set's name (a key of ``CLIENTS``, or ``default``)."""
    return config.client


def status_class(status: int | None) -> str:
    """``2xx`` … ``5xx`` for an HTTP status; ``none`` when no answer came (timeout, refused, breaker open)."""
    if status is None or not 100 <= status <= 599:
        return "none"
    return f"{status // 100}xx"


def best_effort(record: Callable[P, None]) -> Callable[P, None]:
    """A failure to record (an unwritable PROMETHEUS_MULTIPROC_DIR...) is logged, never raised to the caller."""

    @wraps(record)
    def recording(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception as err:
            _warn("Metrics: %s not recorded (%s: %s)", record.__name__, type(err).__name__, err)

    return recording


@best_effort
def token_request(config: Config, origin: str, outcome: str) -> None:
    if ENABLED:
        instruments.TOKEN_REQUESTS.labels(set_name(config), origin, outcome).inc()


#: The bound children of each (set, endpoint, status): ``labels()`` costs more than the call's own
#: recording, and the keys are few (route templates, never an account id; statuses 100-599 or None).
_api_children: dict[tuple[str, str, int | None], tuple[Any, Any]] = {}


@best_effort
def api_request(config: Config, endpoint: str, status: int | None, seconds: float) -> None:
    if not ENABLED:
        return
    children = _api_children.get((config.client, endpoint, status))
    if children is None:
        labels = (set_name(config), endpoint, status_class(status))
        children = (instruments.API_REQUESTS.labels(*labels), instruments.API_DURATION.labels(*labels[:2]))
        _api_children[(config.client, endpoint, status)] = children
    children[0].inc()
    children[1].observe(seconds)


@best_effort
def profiles_synced(config: Config, count: int) -> None:
    if ENABLED and count > 0:
        instruments.PROFILES_SYNCED.labels(set_name(config)).inc(count)


@best_effort
def band_changed(config: Config, band_label: str) -> None:
    if ENABLED:
        instruments.BAND_CHANGES.labels(set_name(config), band_label).inc()
