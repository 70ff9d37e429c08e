"""The counters and the histogram the app records into, defined once per process.

They are built with ``registry=None``: importing (or re-importing) this module registers nothing
anywhere, so it can never raise Django-reload's "Duplicated timeseries". :class:`Recorded` is the
one collector that exposes them; :mod:`bettorsense.metrics.exposition` decides which registry gets it.
Under ``PROMETHEUS_MULTIPROC_DIR`` prometheus_client writes each process's values to files in that
directory, and the scrape reads all of them instead (see the exposition module).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

#: Our choice (the vendor publishes no latency figures): from a loopback call to the default
#: RETRY_BUDGET + READ_TIMEOUT of 20 s, the longest a call may take.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)

TOKEN_REQUESTS: Final = Counter(
    "bettorsense_token_requests",
    "Token requests made to the token endpoint, by credential set, origin and outcome.",
    ("set", "origin", "outcome"),
    registry=None,
)
API_REQUESTS: Final = Counter(
    "bettorsense_api_requests",
    "Bettor Sense API calls (retries included in one call), by credential set, route template and status class.",
    ("set", "endpoint", "status_class"),
    registry=None,
)
API_DURATION: Final = Histogram(
    "bettorsense_api_request_duration_seconds",
    "Duration of Bettor Sense API calls, retries and the wait for a token included.",
    ("set", "endpoint"),
    buckets=DURATION_BUCKETS,
    registry=None,
)
PROFILES_SYNCED: Final = Counter(
    "bettorsense_profiles_synced",
    "Risk profiles written to the local store by the sync, by credential set.",
    ("set",),
    registry=None,
)
BAND_CHANGES: Final = Counter(
    "bettorsense_band_changes",
    "Players whose band moved in a sync, by credential set and the band they moved to.",
    ("set", "band"),
    registry=None,
)

ALL: Final = (TOKEN_REQUESTS, API_REQUESTS, API_DURATION, PROFILES_SYNCED, BAND_CHANGES)


class Recorded(Collector):
    """This process's values of the instruments above (single-process mode)."""

    def collect(self) -> Iterable[Metric]:
        for instrument in ALL:
            yield from instrument.collect()

    def describe(self) -> Iterable[Metric]:
        for instrument in ALL:
            yield from instrument.describe()
