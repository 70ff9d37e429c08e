"""No player data where it does not belong: pseudonyms in log lines, no ids in anonymous errors."""

from __future__ import annotations

import contextlib
import logging
import re

import pytest
from django.core.management import call_command
from django.test import override_settings

from bettorsense.conf import get_config
from bettorsense.exceptions import PlayerNotFound
from bettorsense.privacy.pseudonyms import log_name, pseudonym
from bettorsense.services import account_digest, get_player_risk_profile
from bettorsense.signals import risk_band_changed
from bettorsense.sync import run_sync
from tests.support.player_traces import cache_entries

pytestmark = pytest.mark.django_db(transaction=True)
# Erasure scans every key of the shared Redis in CI, other workers' tests too: an account no other test uses.
ERASED = "player_119"

ACCOUNT_ID = re.compile(r"player_\d+|nobody_\w+|not_created_\w+|inactive_\w+")


def test_a_pseudonym_is_short_stable_and_keyed(configure):
    first = pseudonym("player_1")
    assert re.fullmatch(r"ps_[0-9a-f]{16}", first) and pseudonym("player_1") == first
    assert pseudonym("player_2") != first and "player_1" not in first
    configure(PSEUDONYM_KEY="another-key-for-pseudonyms")
    assert pseudonym("player_1") != first
    with override_settings(SECRET_KEY="another-secret-key-for-tests"):
        configure()  # PSEUDONYM_KEY empty: SECRET_KEY keys it
        assert pseudonym("player_1") not in (first, log_name("player_2"))


def test_log_name_is_the_pseudonym_unless_log_account_ids_is_on(configure):
    assert log_name("player_1") == pseudonym("player_1")
    configure(LOG_ACCOUNT_IDS=True)
    assert get_config().log_account_ids and log_name("player_1") == "player_1"


def _failing_receiver(profile, **kwargs):
    raise RuntimeError("the host's receiver failed")


def _player_lines(records: list[logging.LogRecord]) -> list[str]:
    """Our log lines at INFO and above that name an account id (the vendor's stand-in excepted)."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if r.levelno >= logging.INFO
        and r.name.startswith("bettorsense")
        and not r.name.startswith("bettorsense.sandbox")
        and ACCOUNT_ID.search(r.getMessage())
    ]


def test_sync_profile_views_and_erasure_log_players_by_pseudonym_only(configure, sandbox, client, caplog):
    sandbox.state.set_config(players=120)
    caplog.set_level(logging.DEBUG)
    risk_band_changed.connect(_failing_receiver, dispatch_uid="privacy-log-test")
    try:
        run_sync()
        sandbox.state.advance_day()
        run_sync()
    finally:
        risk_band_changed.disconnect(dispatch_uid="privacy-log-test")
    failures = [r for r in caplog.records if r.name == "bettorsense.sync" and r.levelno == logging.ERROR]
    assert failures, "no band moved: the test proves nothing"
    assert all(re.search(r"ps_[0-9a-f]{16}", r.getMessage()) for r in failures)
    for path in ("player_1", "player_97", "nobody_1", "player_1"):
        client.get(f"/players/{path}/risk-profile/")
    call_command("bettorsense_profile", ERASED)
    call_command("bettorsense_erase", ERASED)
    assert any(pseudonym(ERASED) in r.getMessage() for r in caplog.records)
    assert _player_lines(caplog.records) == []


def test_with_log_account_ids_on_the_id_itself_is_logged(configure, sandbox, caplog):
    configure(LOG_ACCOUNT_IDS=True)
    caplog.set_level(logging.INFO)
    call_command("bettorsense_erase", ERASED)
    assert any(ERASED in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("account", ["nobody_4711", "not_created_4711", "inactive_4711", "player_97", "a b\u00e9c"])
def test_errors_to_anonymous_callers_do_not_repeat_the_account_id(configure, sandbox, client, account):
    response = client.get(f"/players/{account}/risk-profile/")
    assert response.status_code == 404
    assert account not in response.content.decode() and account not in response.json()["message"]


def test_metrics_and_other_cache_entries_carry_no_account(configure, sandbox):
    for account in ("player_5", "nobody_5"):
        with contextlib.suppress(PlayerNotFound):
            get_player_risk_profile(account)
    ours = f"{get_config().key_prefix}:"  # this test's keys (Redis keeps earlier tests' too)
    keys = [key for key, _ in cache_entries() if ours in key]
    assert any(":count:" in key or ":state:" in key for key in keys), "no telemetry was written: proves nothing"
    naming = [key for key in keys if any(n in key for n in ("player_5", "nobody_5"))]
    derived = [key for key in keys if account_digest("player_5") in key or account_digest("nobody_5") in key]
    assert naming == [] and len(derived) == 2 and all(":profile:123:456:" in key for key in derived)
