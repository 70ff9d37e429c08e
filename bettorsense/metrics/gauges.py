"""Gauges computed when Prometheus scrapes, from the fleet's shared state.

A process-local gauge would say what one worker last saw; these read what the whole fleet shares
(the token and beat heartbeat in the cache, the breaker, the sync runs and the review queue in the
database), so any process's scrape tells the truth. A source that cannot be read is reported by
``bettorsense_metrics_source_up{source=...} 0`` and its gauges are left out, never a failed scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator

from django.db import DatabaseError
from django.db.models import Max
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bettorsense import telemetry, tokens
from bettorsense.cache import CacheUnavailable
from bettorsense.client.breaker import BreakerState, get_breaker
from bettorsense.conf import Config, client_names, get_config
from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.metrics import set_name

logger = logging.getLogger(__name__)

CACHE, DATABASE = "cache", "database"


def configured_sets() -> list[Config]:
    """The credential sets to report on: every one whose settings resolve."""
    configs: list[Config] = []
    try:
        names = client_names()
    except BettorSenseConfigurationError:
        return []
    for name in names:
        try:
            configs.append(get_config(name))
        except BettorSenseConfigurationError:
            continue
    return configs


def token_gauges(configs: list[Config], now: float) -> Iterator[Metric]:
    seconds_left = GaugeMetricFamily(
        "bettorsense_token_seconds_left",
        "Seconds until the fleet's shared access token expires; 0 when there is none.",
        labels=["set"],
    )
    beat = GaugeMetricFamily(
        "bettorsense_beat_last_run_timestamp_seconds",
        "When Celery beat last ran the token refresh task (Unix time).",
        labels=["set"],
    )
    for config in configs:
        token = tokens.get_token_manager(config).peek()
        seconds_left.add_metric([set_name(config)], max(0.0, token.seconds_left(now)) if token else 0.0)
        state = telemetry.read_token_state(config)  # raises CacheUnavailable
        if state.beat_last_run is not None:
            beat.add_metric([set_name(config)], state.beat_last_run)
    yield seconds_left
    yield beat


def breaker_gauges(configs: list[Config]) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "bettorsense_breaker_state",
        "The circuit breaker's state: 1 for the current one of closed, half-open and open.",
        labels=["set", "state"],
    )
    for config in configs:
        current = get_breaker(config).state()
        for state in BreakerState:
            family.add_metric([set_name(config), state.value], 1.0 if state is current else 0.0)
    yield family


def sync_gauges(configs: list[Config]) -> Iterator[Metric]:
    from bettorsense.models import SyncRun

    family = GaugeMetricFamily(
        "bettorsense_sync_last_success_timestamp_seconds",
        "When the last successful sync of each bookmaker pair finished (Unix time).",
        labels=["set", "bookmaker", "sub_bookmaker"],
    )
    rows = (
        SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED)
        .values("client", "bookmaker_id", "sub_bookmaker_id")
        .annotate(last=Max("finished_at"))
        .order_by("client", "bookmaker_id", "sub_bookmaker_id")
    )
    for row in rows:
        if row["last"] is not None:
            labels = [str(row["client"]), str(row["bookmaker_id"]), str(row["sub_bookmaker_id"])]
            family.add_metric(labels, row["last"].timestamp())
    yield family


def queue_gauges() -> Iterator[Metric]:
    from bettorsense.reviews import queue

    family = GaugeMetricFamily("bettorsense_review_queue_length", "Players waiting for a responsible-gaming review.")
    family.add_metric([], float(queue.queued(queue.review_level()).count()))
    yield family


class SharedStateGauges(Collector):
    """The gauges above, each source read once per scrape; a failing source is left out."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        configs = configured_sets()
        up = GaugeMetricFamily(
            "bettorsense_metrics_source_up", "Whether the scrape could read a source of the gauges.", labels=["source"]
        )
        sources: list[tuple[str, Callable[[], Iterator[Metric]]]] = [
            (CACHE, lambda: _chain(token_gauges(configs, self.clock()), breaker_gauges(configs))),
            (DATABASE, lambda: _chain(sync_gauges(configs), queue_gauges())),
        ]
        for source, read in sources:
            try:
                families = list(read())
            except (CacheUnavailable, DatabaseError) as err:
                logger.warning("Metrics: the %s could not be read (%s)", source, type(err).__name__)
                up.add_metric([source], 0.0)
                continue
            except Exception:  # a bug in one source must not fail the whole scrape; it is logged in full
                logger.exception("Metrics: reading the %s failed", source)
                up.add_metric([source], 0.0)
                continue
            up.add_metric([source], 1.0)
            yield from families
        yield up

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape time: nothing to check for duplicates up front


def _chain(*parts: Iterator[Metric]) -> Iterator[Metric]:
    for part in parts:
        yield from part
