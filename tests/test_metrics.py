"""The metrics endpoint: who may scrape it, what it counts, that no label holds an account id.

Calls go to the sandbox over real HTTP; the scrape is the real view. The counters live for the whole
test process, so each test compares a scrape after its calls with one before them.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections import Counter

import pytest
from django.contrib.auth.models import Permission
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bettorsense.client.routes import route_template
from bettorsense.exceptions import PlayerNotFound, ProfileNotCreated, TokenError
from bettorsense.metrics import exposition, status_class
from bettorsense.profiles import RiskBand
from bettorsense.reviews import queue
from bettorsense.sandbox.faults import Fault
from bettorsense.services import get_player_risk_profile, iter_risk_profiles
from bettorsense.sync import run_sync

pytestmark = pytest.mark.django_db

URL = "/bettorsense/metrics/"
KEY = "metrics-key-for-tests-0123456789"
PROFILE_ROUTE = (
    "/v1/Operator/PlayerRiskProfile/bookmakers/{bookmakerId}/sub-bookmakers/{subBookmakerId}/accountid/{accountId}"
)
BATCH_ROUTE = "/v1/Operator/RiskProfiles/bookmakers/{bookmakerId}/sub-bookmakers/{subBookmakerId}"
# Spelled so that no metric name, label name or route word contains them.
ACCOUNTS = ("player_1", "player_2", "player_3")
MISSING = ("player_97", "zz-no-such-account-4711")


@pytest.fixture
def scraping(configure):
    configure(HEALTH_TOKEN=KEY)
    return configure


def bearer(key: str = KEY) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client) -> str:
    response = client.get(URL, **bearer())
    assert response.status_code == 200, response.content
    return response.content.decode()


# --- access -------------------------------------------------------------------------------------


def test_anonymous_and_wrong_keys_are_refused(client, scraping):
    for headers in ({}, bearer("wrong-key"), {"HTTP_AUTHORIZATION": f"Basic {KEY}"}):
        response = client.get(URL, **headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"bettorsense_" not in response.content


def test_no_key_configured_means_no_bearer_access(client, configure):
    configure(HEALTH_TOKEN="")
    assert client.get(URL, **bearer("")).status_code == 401


def test_the_key_or_a_staff_session_with_the_permission_gets_the_exposition(client, scraping, django_user_model):
    response = client.get(URL, **bearer())
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"] and "Authorization" in response["Vary"]

    staff = django_user_model.objects.create_user("watcher", password="pw-watcher-1", is_staff=True)
    client.force_login(staff)
    assert client.get(URL).status_code == 401  # staff, without the permission
    staff.user_permissions.add(Permission.objects.get(codename="view_health"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert client.get(URL).status_code == 200


def test_only_get(client, scraping):
    assert client.post(URL, **bearer()).status_code == 405


# --- what is counted ----------------------------------------------------------------------------


def test_api_calls_are_counted_by_route_template_and_no_label_holds_an_account_id(client, scraping, sandbox):
    before = samples(scrape(client))
    for account in ACCOUNTS:
        assert get_player_risk_profile(account, fresh=True).account_id == account
    for account in MISSING:
        with pytest.raises((PlayerNotFound, ProfileNotCreated)):
            get_player_risk_profile(account, fresh=True)
    text = scrape(client)
    after = samples(text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    api = "bettorsense_api_requests_total"
    assert grew(api, set="default", endpoint=PROFILE_ROUTE, status_class="2xx") == len(ACCOUNTS)
    assert grew(api, set="default", endpoint=PROFILE_ROUTE, status_class="4xx") == len(MISSING)
    duration = "bettorsense_api_request_duration_seconds_count"
    assert grew(duration, set="default", endpoint=PROFILE_ROUTE) == len(ACCOUNTS) + len(MISSING)
    tokens = "bettorsense_token_requests_total"
    assert grew(tokens, set="default", origin="request", outcome="ok") == 1 == sandbox.state.stats()["tokens"]["issued"]
    assert value(after, "bettorsense_token_seconds_left", set="default") > 0
    assert value(after, "bettorsense_breaker_state", set="default", state="closed") == 1
    assert value(after, "bettorsense_breaker_state", set="default", state="open") == 0
    for account in ACCOUNTS + MISSING:
        assert account not in text
    for (_, labels), _ in after.items():
        for label, label_value in labels:
            assert not any(account in label_value for account in ACCOUNTS + MISSING), (label, label_value)


def test_a_failed_token_request_is_counted_by_its_error(client, scraping, sandbox):
    sandbox.state.add_fault(Fault(target="token", kind="status", status=500))
    before = samples(scrape(client))
    with pytest.raises(TokenError):
        get_player_risk_profile("player_1", fresh=True)
    after = samples(scrape(client))
    failed = {
        labels: after[(name, labels)] - before.get((name, labels), 0.0)
        for name, labels in after
        if name == "bettorsense_token_requests_total" and ("outcome", "ok") not in labels
    }
    assert sum(failed.values()) == 1
    assert value(after, "bettorsense_token_seconds_left", set="default") == 0


@pytest.mark.django_db(transaction=True)  # band changes are counted once their page has committed
def test_the_sync_counts_profiles_band_changes_and_its_time(client, scraping, sandbox):
    before = samples(scrape(client))
    first = run_sync()
    middle = samples(scrape(client))
    assert (
        value(middle, "bettorsense_profiles_synced_total", set="default")
        - value(before, "bettorsense_profiles_synced_total", set="default")
        == first.profiles_seen
    )
    last = value(
        middle, "bettorsense_sync_last_success_timestamp_seconds", set="default", bookmaker="123", sub_bookmaker="456"
    )
    assert last == pytest.approx(first.finished_at.timestamp())

    scores = {p.account_id: p.risk_score for p in iter_risk_profiles()}
    sandbox.state.advance_day()
    rescored = {p.account_id: p.risk_score for p in iter_risk_profiles()}
    moved = Counter(
        RiskBand.for_score(rescored[a]).name.lower()
        for a in scores
        if RiskBand.for_score(scores[a]) != RiskBand.for_score(rescored[a])
    )
    run_sync()
    after = samples(scrape(client))
    assert moved
    for band, count in moved.items():
        name = "bettorsense_band_changes_total"
        assert value(after, name, set="default", band=band) - value(middle, name, set="default", band=band) == count


def test_an_unreadable_cache_leaves_its_gauges_out_and_the_scrape_up(client, scraping, settings):
    settings.CACHES = {
        **settings.CACHES,
        "dead": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"},
    }
    scraping(HEALTH_TOKEN=KEY, CACHE_ALIAS="dead")
    scraped = samples(scrape(client))
    assert value(scraped, "bettorsense_metrics_source_up", source="cache") == 0
    assert value(scraped, "bettorsense_metrics_source_up", source="database") == 1
    assert not any(name == "bettorsense_beat_last_run_timestamp_seconds" for name, _ in scraped)


# --- pieces -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segments", "template"),
    [
        (
            ("v1", "Operator", "PlayerRiskProfile", "bookmakers", "7", "sub-bookmakers", "8", "accountid", "a/b"),
            PROFILE_ROUTE,
        ),
        (("v1", "Operator", "RiskProfiles", "bookmakers", "7", "sub-bookmakers", "8"), BATCH_ROUTE),
        (("v1", "Operator", "player_42", "accountid", "player_42"), "/v1/Operator/{value}/accountid/{accountId}"),
    ],
)
def test_route_templates_name_every_value(segments, template):
    assert route_template(segments) == template


@pytest.mark.parametrize(("status", "label"), [(200, "2xx"), (404, "4xx"), (503, "5xx"), (None, "none"), (999, "none")])
def test_status_classes(status, label):
    assert status_class(status) == label


def test_registering_into_a_registry_twice_replaces_instead_of_crashing(configure):
    registry = CollectorRegistry()
    exposition.register_into(registry)
    exposition.register_into(registry)
    names = [family.name for family in registry.collect()]
    assert names.count("bettorsense_token_requests") == 1
    assert names.count("bettorsense_token_seconds_left") == 1


def test_the_default_registry_gets_the_collectors_when_the_setting_asks(configure):
    from prometheus_client import REGISTRY

    from bettorsense.apps import register_metrics_if_asked

    configure(METRICS_DEFAULT_REGISTRY=False)
    register_metrics_if_asked()
    assert not getattr(REGISTRY, "_bettorsense_collectors", ())
    configure(METRICS_DEFAULT_REGISTRY=True)
    try:
        register_metrics_if_asked()
        register_metrics_if_asked()  # a second start-up (a reload) replaces, never duplicates
        names = [family.name for family in REGISTRY.collect()]
        assert names.count("bettorsense_api_requests") == 1 and "bettorsense_breaker_state" in names
    finally:
        for collector in getattr(REGISTRY, "_bettorsense_collectors", ()):
            REGISTRY.unregister(collector)
        REGISTRY._bettorsense_collectors = ()


WITHOUT_EXTRAS = """
import sys
sys.modules["prometheus_client"] = None  # as if not installed: every import of it fails
sys.modules["opentelemetry"] = None
import django
django.setup()
from django.http import Http404
from django.test import RequestFactory
from bettorsense import metrics, tracing, views
from bettorsense.conf import get_config
assert not metrics.available() and not tracing.ENABLED
metrics.api_request(get_config(), "/v1", 200, 0.1)
metrics.token_request(get_config(), "request", "ok")
with tracing.http_client_span("GET", "https://example.invalid/api", "/v1") as span:
    span.status = 200
try:
    views.metrics(RequestFactory().get("/bettorsense/metrics/"))
except Http404:
    print("404")
"""


def test_without_the_extras_the_app_imports_records_nothing_and_the_view_is_404():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "404"


def test_the_review_queue_length_is_the_queue(client, scraping):
    run_sync()  # every player's first change: those at the review band or above enter the queue
    waiting = queue.queued(queue.review_level()).count()
    assert waiting > 0
    assert value(samples(scrape(client)), "bettorsense_review_queue_length") == waiting


RECORD_INTO_A_MISSING_DIRECTORY = """
import logging
import django
django.setup()
from bettorsense import metrics
from bettorsense.conf import get_config
from bettorsense.metrics.exposition import multiprocess_mode, scrape
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger("bettorsense.metrics").addHandler(Keep())
assert multiprocess_mode()
metrics.api_request(get_config(), "/v1", 200, 0.1)
metrics.token_request(get_config(), "request", "ok")
assert records and "not recorded (FileNotFoundError" in records[0].getMessage(), [r.getMessage() for r in records]
assert b"bettorsense_api_requests" not in scrape()
print("ok")
"""


def test_an_unwritable_multiprocess_directory_costs_the_metrics_never_the_call(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "never-created"),
    }
    result = subprocess.run(
        [sys.executable, "-c", RECORD_INTO_A_MISSING_DIRECTORY],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_default_registry_setting_without_prometheus_client_is_a_warning(configure, monkeypatch):
    from bettorsense import checks

    configure(METRICS_DEFAULT_REGISTRY=True)
    assert "bettorsense.W013" not in {message.id for message in checks.check_settings()}
    real = checks._importable
    monkeypatch.setattr(checks, "_importable", lambda package: package != "prometheus_client" and real(package))
    assert "bettorsense.W013" in {message.id for message in checks.check_settings()}


def test_a_manual_renewal_is_counted_by_its_origin(client, scraping):
    from bettorsense import tokens

    before = samples(scrape(client))
    tokens.force_refresh()
    after = samples(scrape(client))
    name = "bettorsense_token_requests_total"
    labels = {"set": "default", "origin": "manual", "outcome": "ok"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_an_open_breaker_and_beat_s_last_run_are_gauges(client, scraping, sandbox):
    from bettorsense import telemetry
    from bettorsense.conf import get_config
    from bettorsense.exceptions import ServiceUnavailable

    scraping(HEALTH_TOKEN=KEY, BREAKER_THRESHOLD=1, MAX_RETRIES=0)
    telemetry.record_beat_tick(get_config(), "ok")
    sandbox.state.add_fault(Fault(target="api", kind="status", status=503))
    failed = {"set": "default", "endpoint": PROFILE_ROUTE, "status_class": "5xx"}
    before = value(samples(scrape(client)), "bettorsense_api_requests_total", **failed)
    with pytest.raises(ServiceUnavailable):
        get_player_risk_profile("player_1", fresh=True)
    scraped = samples(scrape(client))
    assert value(scraped, "bettorsense_breaker_state", set="default", state="open") == 1
    assert value(scraped, "bettorsense_breaker_state", set="default", state="closed") == 0
    assert value(scraped, "bettorsense_api_requests_total", **failed) - before == 1
    beat = value(scraped, "bettorsense_beat_last_run_timestamp_seconds", set="default")
    assert beat == telemetry.read_token_state(get_config()).beat_last_run


def test_a_failing_source_is_down_and_the_scrape_still_answers(client, scraping, monkeypatch):
    from bettorsense.metrics import gauges

    def broken(configs):
        raise RuntimeError("a bug in the breaker gauge")

    monkeypatch.setattr(gauges, "breaker_gauges", broken)
    scraped = samples(scrape(client))
    assert value(scraped, "bettorsense_metrics_source_up", source="cache") == 0
    assert value(scraped, "bettorsense_metrics_source_up", source="database") == 1
    assert not any(name == "bettorsense_token_seconds_left" for name, _ in scraped)


def test_an_unreadable_multiprocess_directory_leaves_only_the_gauges():
    class Unreadable:
        def collect(self):
            raise struct.error("unpack requires a buffer of 8 bytes")

    assert list(exposition.OursOnly(Unreadable()).collect()) == []
