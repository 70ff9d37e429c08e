"""Which registry exposes the metrics, and the scrape's text.

* One process (runserver, a single gunicorn worker): the scrape reads this process's counters.
* gunicorn's workers, Celery's prefork pool: start every process with ``PROMETHEUS_MULTIPROC_DIR``
  set to one empty directory. prometheus_client then writes each process's values to files there,
  and the scrape adds up all of them (``prometheus_client.multiprocess``), whichever worker serves it.
* Inside an existing registry (django-prometheus serves ``prometheus_client.REGISTRY``):
  :func:`register_into` adds our collectors to it, once; the ``METRICS_DEFAULT_REGISTRY`` setting
  does it at start-up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from bettorsense.metrics.gauges import SharedStateGauges
from bettorsense.metrics.instruments import Recorded

logger = logging.getLogger(__name__)

PREFIX = "bettorsense_"
_ATTRIBUTE = "_bettorsense_collectors"
_lock = threading.Lock()


def multiprocess_mode() -> bool:
    """Whether prometheus_client writes values to ``PROMETHEUS_MULTIPROC_DIR`` (chosen at its import)."""
    return values.ValueClass is not values.MutexValue


class OursOnly(Collector):
    """A multiprocess collector's families that are ours: the directory may hold other libraries' too."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterable[Metric]:
        try:
            families = list(self.collector.collect())
        except Exception as err:  # a truncated or foreign file in the directory: the gauges still go out
            logger.warning("Metrics: PROMETHEUS_MULTIPROC_DIR could not be read (%s: %s)", type(err).__name__, err)
            return []
        return [family for family in families if family.name.startswith(PREFIX)]


def _recorded() -> Collector | None:
    if not multiprocess_mode():
        return Recorded()
    try:
        # Given no registry: it would register itself into it.
        return OursOnly(MultiProcessCollector(None))  # type: ignore[no-untyped-call]
    except ValueError as err:  # the directory is gone; the gauges can still be served
        logger.warning("Metrics: PROMETHEUS_MULTIPROC_DIR cannot be read (%s)", err)
        return None


def scrape() -> bytes:
    """The exposition text of every bettorsense metric, counters summed across processes."""
    registry = CollectorRegistry(auto_describe=False)
    recorded = _recorded()
    if recorded is not None:
        registry.register(recorded)
    registry.register(SharedStateGauges())
    return generate_latest(registry)


def register_into(registry: CollectorRegistry = REGISTRY) -> None:
    """Add our collectors to ``registry`` (default: prometheus_client's, which django-prometheus serves).

    Idempotent, and safe across a reload of this module: the collectors a previous call added are
    kept on the registry and replaced, never registered twice. Under ``PROMETHEUS_MULTIPROC_DIR`` the
    host's own view already merges every process's files (ours included); only the gauges are added.
    """
    with _lock:
        for collector in getattr(registry, _ATTRIBUTE, ()):
            registry.unregister(collector)
        collectors: list[Collector] = [SharedStateGauges()]
        if not multiprocess_mode():
            collectors.append(Recorded())
        for collector in collectors:
            registry.register(collector)
        setattr(registry, _ATTRIBUTE, tuple(collectors))
    logger.info("Metrics: bettorsense collectors registered into %s", type(registry).__name__)
