"""Named credential sets: several brands, each with its own credentials and bookmaker ids, on one deployment.

Against the sandbox over real HTTP: each set gets its own token, its own breaker and backoff, its
own cache entries; a flat ``BETTORSENSE`` dict is the one set named ``default``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.views.debug import ExceptionReporter

from bettorsense import get_access_token, get_player_risk_profile, iter_risk_profiles, tasks, tokens
from bettorsense.cache import cache_key
from bettorsense.client.breaker import BreakerState, get_breaker
from bettorsense.conf import DEFAULT_CLIENT, client_names, get_config, unknown_client_setting_names
from bettorsense.exceptions import BettorSenseConfigurationError, ServiceUnavailable, TokenServerError, UnknownClient
from bettorsense.sandbox import Fault
from bettorsense.tokens.shared import SharedTokenCache
from tests.support.sandbox import CLIENT_ID

pytestmark = pytest.mark.django_db
# Erasure scans every key of the shared Redis in CI, other workers' tests too: an account no other test uses.
ERASED = "player_4998"

BRAND_B_ID = "brand-b-client"
BRAND_B_SECRET = "brand-b-secret-5f4dcc3b"
BRAND_B_PAIR = (777, 888)


def brand_b(**overrides: Any) -> dict[str, Any]:
    return {
        "CLIENT_ID": BRAND_B_ID,
        "CLIENT_SECRET": BRAND_B_SECRET,
        "BOOKMAKER_ID": BRAND_B_PAIR[0],
        "SUB_BOOKMAKER_ID": BRAND_B_PAIR[1],
        **overrides,
    }


@pytest.fixture
def two_sets(configure: Any, sandbox: Any) -> Iterator[Any]:
    sandbox.state.add_client(BRAND_B_ID, BRAND_B_SECRET, bookmakers=[BRAND_B_PAIR])
    configure(CLIENTS={"brand-b": brand_b()})
    yield sandbox
    with sandbox.state.lock:
        sandbox.state.clients.pop(BRAND_B_ID, None)


def token_owner(token: str) -> str:
    from harness.fleet import jwt_claims

    return str(jwt_claims(token).get("azp"))


# --- configuration -------------------------------------------------------------------------


def test_a_flat_dict_is_the_one_set_named_default(configure: Any) -> None:
    configure()
    assert client_names() == (DEFAULT_CLIENT,)
    assert get_config() is get_config(DEFAULT_CLIENT)
    assert get_config().client == DEFAULT_CLIENT
    assert get_config().client_id == CLIENT_ID


def test_a_named_set_inherits_shared_settings_and_keeps_its_own(two_sets: Any, settings: Any) -> None:
    settings.BETTORSENSE = {**settings.BETTORSENSE, "READ_TIMEOUT": 4.0}
    settings.BETTORSENSE["CLIENTS"]["brand-b"]["MAX_RETRIES"] = 1
    settings.BETTORSENSE = dict(settings.BETTORSENSE)
    default, other = get_config(), get_config("brand-b")
    assert client_names() == ("default", "brand-b")
    assert (other.client, other.client_id, other.bookmaker_id, other.sub_bookmaker_id) == (
        "brand-b",
        BRAND_B_ID,
        *BRAND_B_PAIR,
    )
    assert other.read_timeout == default.read_timeout == 4.0
    assert (other.max_retries, default.max_retries) == (1, 3)
    assert other.token_url == default.token_url


def test_a_named_set_never_inherits_credentials_or_bookmaker_ids(configure: Any) -> None:
    configure(CLIENTS={"brand-c": {}})
    other = get_config("brand-c")
    assert (other.client_id, other.client_secret, other.bookmaker_id, other.sub_bookmaker_id) == ("", "", None, None)
    assert not other.has_credentials


def test_the_default_set_may_be_given_in_clients(configure: Any) -> None:
    configure(CLIENTS={"default": {"BOOKMAKER_ID": 9}})
    assert get_config().bookmaker_id == 9


def test_an_unknown_name_is_a_typed_error_naming_the_sets(two_sets: Any) -> None:
    for call in (
        lambda: get_config("brand-x"),
        lambda: get_access_token(client="brand-x"),
        lambda: get_player_risk_profile("player_1", client="brand-x"),
        lambda: list(iter_risk_profiles(client="brand-x")),
    ):
        with pytest.raises(UnknownClient, match=r"brand-x.*default, brand-b"):
            call()
    with pytest.raises(UnknownClient):
        get_config(["default"])  # type: ignore[arg-type]


def test_a_wrong_value_names_its_set_and_shows_no_secret(configure: Any) -> None:
    configure(CLIENTS={"brand-b": brand_b(MAX_RETRIES="many")})
    error = config_error("brand-b")
    assert error is not None
    assert re.search(r"Credential set 'brand-b'.*MAX_RETRIES", str(error))
    report = ExceptionReporter(None, type(error), error, error.__traceback__).get_traceback_html()
    assert "bettorsense/conf.py" in report and BRAND_B_SECRET not in report
    assert get_config().max_retries == 3  # the other sets still resolve


@pytest.mark.parametrize(
    "clients",
    [
        {"brand b": {"CLIENT_SECRET": BRAND_B_SECRET}},
        {"brand-b": {"CLIENT_SECRET": BRAND_B_SECRET}, "brand-c": "not a dict"},
        {"brand-b": {"CLIENT_SECRET": BRAND_B_SECRET, "KEY_PREFIX": "x"}},
    ],
)
def test_the_technical_500_page_of_a_wrong_clients_dict_shows_no_secret(configure: Any, clients: Any) -> None:
    configure(CLIENTS=clients)
    errors = [error for error in map(config_error, ("default", "brand-b", "brand-x")) if error is not None]
    assert errors
    for error in errors:
        reporter = ExceptionReporter(None, type(error), error, error.__traceback__)
        assert "bettorsense/conf.py" in reporter.get_traceback_html()
        assert BRAND_B_SECRET not in reporter.get_traceback_html()
        assert BRAND_B_SECRET not in reporter.get_traceback_text()


def config_error(name: str) -> BettorSenseConfigurationError | None:
    # The traceback starts in this frame, which holds no secret.
    try:
        get_config(name)
    except BettorSenseConfigurationError as err:
        return err
    return None


@pytest.mark.parametrize(
    ("clients", "message"),
    [
        ({"brand b": {}}, "keys name credential sets"),
        ({"brand-b": "not a dict"}, "dict of dicts"),
        ("brand-b", "dict of credential sets"),
        ({"brand-b": {"KEY_PREFIX": "x"}}, "KEY_PREFIX, which apply to the whole fleet"),
    ],
)
def test_a_wrong_clients_shape_is_refused(configure: Any, clients: Any, message: str) -> None:
    configure(CLIENTS=clients)
    with pytest.raises(BettorSenseConfigurationError, match=message):
        if isinstance(clients, dict) and all(isinstance(v, dict) for v in clients.values()):
            get_config(next(iter(clients)))
        else:
            get_config()


def test_unknown_keys_of_a_set_are_listed(configure: Any) -> None:
    configure(CLIENTS={"brand-b": brand_b(BOOKMAKERID=1)})
    assert unknown_client_setting_names() == [("brand-b", "BOOKMAKERID")]


# --- one token per set ---------------------------------------------------------------------


def test_each_set_gets_its_own_token_under_its_own_key(two_sets: Any) -> None:
    default_token = get_access_token()
    other_token = get_access_token(client="brand-b")
    assert token_owner(default_token) == CLIENT_ID
    assert token_owner(other_token) == BRAND_B_ID
    assert get_access_token() == default_token and get_access_token(client="brand-b") == other_token
    default_key = SharedTokenCache(get_config()).token_key
    other_key = SharedTokenCache(get_config("brand-b")).token_key
    assert default_key == cache_key(get_config(), "token")
    assert ":brand-b:" in other_key and ":brand-b:" not in default_key
    assert get_config("brand-b").credentials_identity in other_key


def test_changing_one_sets_secret_leaves_the_others_token_in_place(two_sets: Any, settings: Any) -> None:
    default_token = get_access_token()
    get_access_token(client="brand-b")
    cache = caches[get_config().cache_alias]
    default_key = SharedTokenCache(get_config()).token_key
    default_entry = cache.get(default_key)
    two_sets.state.add_client(BRAND_B_ID, "a-new-secret-7c6a180b", bookmakers=[BRAND_B_PAIR])
    settings.BETTORSENSE["CLIENTS"]["brand-b"]["CLIENT_SECRET"] = "a-new-secret-7c6a180b"
    settings.BETTORSENSE = dict(settings.BETTORSENSE)
    tokens.reset_process_state()  # a new deploy: processes that remember nothing
    before = two_sets.state.stats()["token_requests"][CLIENT_ID]["total"]
    assert tokens.force_refresh(client="brand-b").value != default_token
    assert cache.get(default_key) == default_entry
    assert get_access_token() == default_token
    assert two_sets.state.stats()["token_requests"][CLIENT_ID]["total"] == before


def test_one_beat_run_renews_every_set_that_is_due(two_sets: Any) -> None:
    result = tasks.refresh_token()
    assert result == "default: renewed; brand-b: renewed"
    assert token_owner(get_access_token(client="brand-b")) == BRAND_B_ID
    assert tasks.refresh_token() == "default: not-due; brand-b: not-due"
    requests = two_sets.state.stats()["token_requests"]
    assert (requests[CLIENT_ID]["issued"], requests[BRAND_B_ID]["issued"]) == (1, 1)


def test_a_misconfigured_set_does_not_hold_the_others_renewal_back(configure: Any, sandbox: Any) -> None:
    configure(CLIENTS={"brand-b": brand_b(READ_TIMEOUT="slow")})
    assert tasks.refresh_token() == "default: renewed; brand-b: misconfigured"


# --- breaker, backoff, telemetry per set ---------------------------------------------------


def test_one_sets_open_breaker_leaves_the_other_calling(two_sets: Any, settings: Any) -> None:
    settings.BETTORSENSE["CLIENTS"]["brand-b"].update(BREAKER_THRESHOLD=1, MAX_RETRIES=0)
    settings.BETTORSENSE = dict(settings.BETTORSENSE)
    two_sets.state.add_fault(Fault(target="profile", kind="status", status=503))
    with pytest.raises(ServiceUnavailable):
        get_player_risk_profile("player_1", client="brand-b", fresh=True)
    assert get_breaker(get_config("brand-b")).state() is BreakerState.OPEN
    assert get_breaker(get_config()).state() is BreakerState.CLOSED
    two_sets.state.clear_faults()
    assert get_player_risk_profile("player_1", fresh=True).account_id == "player_1"


def test_one_sets_token_backoff_leaves_the_other_renewing(two_sets: Any) -> None:
    two_sets.state.add_fault(Fault(target="token", kind="status", status=503, client_id=BRAND_B_ID))
    with pytest.raises(TokenServerError):
        get_access_token(client="brand-b")
    assert SharedTokenCache(get_config("brand-b")).read_backoff() is not None
    assert SharedTokenCache(get_config()).read_backoff() is None
    assert token_owner(get_access_token()) == CLIENT_ID


def test_profiles_of_each_set_are_cached_apart(two_sets: Any) -> None:
    mine = get_player_risk_profile("player_1")
    theirs = get_player_risk_profile("player_1", client="brand-b")
    assert get_player_risk_profile("player_1").source.value == "cache"
    assert get_player_risk_profile("player_1", client="brand-b").source.value == "cache"
    assert mine.account_id == theirs.account_id == "player_1"


# --- checks, commands ----------------------------------------------------------------------


def check_messages() -> list[Any]:
    from bettorsense.checks import check_settings

    return [message for message in check_settings() if message.id.startswith("bettorsense.E")]


def test_checks_run_per_set_and_name_it(configure: Any) -> None:
    configure(CLIENTS={"brand-b": {"BOOKMAKER_ID": 1}, "brand-c": brand_b(MAX_RETRIES="x")})
    found = {(m.id, m.msg) for m in check_messages()}
    assert ("bettorsense.E001", "Bettor Sense credentials of credential set 'brand-b' are missing.") in found
    assert any(i == "bettorsense.E002" and "Credential set 'brand-c'" in msg for i, msg in found)
    assert all(BRAND_B_SECRET not in msg for _, msg in found)


def test_a_sets_http_url_is_named_by_its_set(configure: Any) -> None:
    configure(
        CLIENTS={
            "brand-b": brand_b(
                ENVIRONMENT="integration",
                TOKEN_URL="https://auth.example.invalid/oauth/token",
                API_URL="http://api.example.invalid",
            )
        }
    )
    https = [m.msg for m in check_messages() if m.id == "bettorsense.E004"]
    assert https == ["BETTORSENSE['CLIENTS']['brand-b']['API_URL'] (http://api.example.invalid) is not an https URL."]


def test_two_sets_of_one_client_are_an_error(configure: Any) -> None:
    configure(CLIENTS={"brand-b": brand_b(CLIENT_ID=CLIENT_ID)})
    assert [m.id for m in check_messages()] == ["bettorsense.E010"]


def test_unknown_keys_of_a_set_are_a_warning(configure: Any) -> None:
    from bettorsense.checks import check_settings

    configure(CLIENTS={"brand-b": brand_b(BOOKMAKERID=1)})
    warnings = [m.msg for m in check_settings() if m.id == "bettorsense.W004"]
    assert warnings == ["BETTORSENSE['CLIENTS']['brand-b']['BOOKMAKERID'] is not a setting of bettorsense."]


def test_commands_take_the_sets_name(two_sets: Any) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("bettorsense_token", "--refresh", "--client", "brand-b", stdout=out)
    assert "Set:         brand-b" in out.getvalue()
    assert two_sets.state.stats()["token_requests"][BRAND_B_ID]["issued"] == 1
    out = StringIO()
    call_command("bettorsense_profile", "player_1", "--json", "--client", "brand-b", stdout=out)
    assert '"playerId": "player_1"' in out.getvalue() or "player_1" in out.getvalue()
    with pytest.raises(CommandError, match="brand-x"):
        call_command("bettorsense_token", "--client", "brand-x", stdout=StringIO())


# --- the sync and the store ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_daily_task_syncs_every_set_and_the_rows_record_it(two_sets: Any, client: Any) -> None:
    from django.contrib.auth.models import User

    from bettorsense.models import PlayerRiskProfile, SyncRun

    two_sets.state.set_config(players=40)
    result = tasks.sync_risk_profiles()
    assert result.startswith("default: succeeded: 40 profiles") and "; brand-b: succeeded: 40 profiles" in result
    runs = dict(SyncRun.objects.values_list("client", "bookmaker_id"))
    assert runs == {"default": 123, "brand-b": BRAND_B_PAIR[0]}
    assert PlayerRiskProfile.objects.filter(client="brand-b", bookmaker_id=BRAND_B_PAIR[0]).count() == 40
    assert PlayerRiskProfile.objects.filter(client="default", bookmaker_id=123).count() == 40

    client.force_login(User.objects.create_superuser("admin", "admin@example.invalid", "pw-for-tests"))
    page = client.get("/admin/bettorsense/playerriskprofile/", {"client": "brand-b"})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 40
    assert {row.client for row in page.context["cl"].result_list} == {"brand-b"}
    runs_page = client.get("/admin/bettorsense/syncrun/", {"client": "default"})
    assert [run.client for run in runs_page.context["cl"].result_list] == ["default"]


@pytest.mark.django_db(transaction=True)
def test_run_sync_takes_the_sets_name(two_sets: Any) -> None:
    from bettorsense.sync import run_sync

    two_sets.state.set_config(players=12)
    run = run_sync(client="brand-b")
    assert (run.client, run.bookmaker_id, run.sub_bookmaker_id, run.profiles_seen) == ("brand-b", *BRAND_B_PAIR, 12)
    with pytest.raises(UnknownClient):
        run_sync(client="brand-x")


# --- health ---------------------------------------------------------------------------------

HEALTH_KEY = "health-key-for-sets-1a79a4d6"


def test_health_json_lists_every_set_and_a_failing_set_names_itself(two_sets: Any, settings: Any, client: Any) -> None:
    from django.urls import reverse

    settings.BETTORSENSE = {**settings.BETTORSENSE, "HEALTH_TOKEN": HEALTH_KEY}
    tasks.refresh_token()
    two_sets.state.add_fault(Fault(target="token", kind="status", status=401, client_id=BRAND_B_ID))
    tokens.reset_process_state()
    with pytest.raises(Exception, match="rejected"):
        tokens.force_refresh(client="brand-b")
    body = client.get(reverse("bettorsense:health"), HTTP_AUTHORIZATION=f"Bearer {HEALTH_KEY}").json()
    sets = {one["name"]: one for one in body["clients"]}
    assert list(sets) == ["default", "brand-b"]
    assert sets["default"]["credentials"]["client_id"] == CLIENT_ID
    assert sets["brand-b"]["credentials"]["client_id"] == BRAND_B_ID
    assert sets["brand-b"]["bookmaker"] == {"id": BRAND_B_PAIR[0], "sub_id": BRAND_B_PAIR[1]}
    assert sets["default"]["token"]["present"] and sets["brand-b"]["token"]["last_error"] is not None
    named = [r["message"] for r in body["reasons"] if r["message"].startswith("Credential set 'brand-b': ")]
    assert named, body["reasons"]
    assert not any(r["message"].startswith("Credential set") for r in sets["default"]["reasons"])
    assert BRAND_B_SECRET not in json.dumps(body)


def test_the_status_command_lists_each_set(two_sets: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    tasks.refresh_token()
    out = StringIO()
    call_command("bettorsense_status", stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("Set ")]
    assert [line.split(":")[0] for line in lines] == ["Set default", "Set brand-b"]
    assert f"client {BRAND_B_ID}, bookmaker 777 / 888" in lines[1]
    out = StringIO()
    call_command("bettorsense_status", "--json", stdout=out)
    assert [one["name"] for one in json.loads(out.getvalue())["clients"]] == ["default", "brand-b"]


def test_the_health_page_has_a_row_per_set(two_sets: Any, client: Any) -> None:
    from django.contrib.auth.models import User

    tasks.refresh_token()
    client.force_login(User.objects.create_superuser("admin", "admin@example.invalid", "pw-for-tests"))
    page = client.get("/admin/bettorsense/health/").content.decode()
    assert 'id="bs-credential-sets"' in page
    assert 'data-client="default"' in page and 'data-client="brand-b"' in page
    assert BRAND_B_ID in page and BRAND_B_SECRET not in page


# --- the beat's cost per set -----------------------------------------------------------------


def beat_queries(configure: Any, sandbox: Any, sets: int) -> tuple[int, int]:
    """Database-cache queries of one beat run that renews every set, and of the next (nothing due)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    clients = {}
    for index in range(1, sets):
        client_id = f"brand-{index}-client"
        sandbox.state.add_client(client_id, f"{client_id}-secret", bookmakers=[BRAND_B_PAIR])
        clients[f"brand-{index}"] = {"CLIENT_ID": client_id, "CLIENT_SECRET": f"{client_id}-secret"}
    configure(CLIENTS=clients, KEY_PREFIX=f"bstest-beat-{sets}-{uuid.uuid4().hex[:8]}")  # nothing cached yet
    tokens.reset_process_state()
    with CaptureQueriesContext(connection) as renewing:
        tasks.refresh_token()
    tokens.reset_process_state()  # as a fresh beat process: nothing memoised
    with CaptureQueriesContext(connection) as steady:
        outcome = tasks.refresh_token()
    assert "renewed" not in outcome
    return len(renewing), len(steady)


def test_one_beat_run_costs_the_same_per_set_however_many_sets(configure: Any, sandbox: Any, settings: Any) -> None:
    from django.core.management import call_command

    # Counted as the database cache's queries, whatever cache the run was given.
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "bettorsense_beat_cost"},
    }
    call_command("createcachetable", database="default")
    costs = {sets: beat_queries(configure, sandbox, sets) for sets in (1, 2, 4)}
    print("database-cache queries per beat run (renewing, steady):", costs)
    one_renewing, one_steady = costs[1]
    for sets, (renewing, steady) in costs.items():
        assert steady == sets * one_steady, costs
        assert renewing == sets * one_renewing, costs


def test_the_fleet_wide_settings_are_the_ones_the_readme_lists() -> None:
    from pathlib import Path

    from bettorsense.conf import SETTINGS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    paragraph = readme.split("The fleet-wide settings are read at the top level only", 1)[1].split("\n* ", 1)[0]
    listed = set(re.findall(r"`([A-Z_]+)`", paragraph))
    assert listed == {setting.name for setting in SETTINGS if setting.scope == "fleet"}
    own = {setting.name for setting in SETTINGS if setting.scope == "own"}
    assert own == {"CLIENT_ID", "CLIENT_SECRET", "BOOKMAKER_ID", "SUB_BOOKMAKER_ID"}


def test_metrics_carry_each_sets_name(two_sets: Any, settings: Any, client: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    settings.BETTORSENSE = {**settings.BETTORSENSE, "HEALTH_TOKEN": HEALTH_KEY}
    tasks.refresh_token()
    get_player_risk_profile("player_1", client="brand-b", fresh=True)
    text = client.get("/bettorsense/metrics/", HTTP_AUTHORIZATION=f"Bearer {HEALTH_KEY}").content.decode()
    labelled = {
        (sample.name, sample.labels.get("set"))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "set" in sample.labels
    }
    assert ("bettorsense_token_seconds_left", "brand-b") in labelled
    assert ("bettorsense_token_seconds_left", "default") in labelled
    assert any(name.startswith("bettorsense_api_requests") and label == "brand-b" for name, label in labelled)


def test_the_live_check_runs_with_the_named_set(two_sets: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("bettorsense_status", "--probe", "--client", "brand-b", "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert body["probe"]["ok"], body["probe"]
    requests = two_sets.state.stats()["token_requests"]
    assert requests[BRAND_B_ID]["issued"] == 1 and CLIENT_ID not in requests


def test_erasure_clears_the_players_cached_copies_under_every_set(two_sets: Any) -> None:
    from bettorsense.privacy.erasure import erase_player
    from bettorsense.services import profile_cache_key

    get_player_risk_profile(ERASED)
    get_player_risk_profile(ERASED, client="brand-b")
    cache = caches[get_config().profile_cache_alias]
    keys = [
        profile_cache_key(get_config(), 123, 456, ERASED),
        profile_cache_key(get_config("brand-b"), *BRAND_B_PAIR, ERASED),
    ]
    assert all(cache.get(key) is not None for key in keys)
    assert erase_player(ERASED).complete
    assert [cache.get(key) for key in keys] == [None, None]
