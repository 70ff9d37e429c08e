"""Erasure: after ``bettorsense_erase`` no table and no cache holds the player's id or its digest."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.management import CommandError, call_command

from bettorsense.conf import get_config
from bettorsense.models import PlayerRiskProfile as StoredProfile
from bettorsense.models import RiskProfileChange, SyncRun
from bettorsense.privacy.access import record_access
from bettorsense.privacy.erasure import erase_player
from bettorsense.privacy.models import AccessRecord
from bettorsense.privacy.pseudonyms import pseudonym
from bettorsense.services import account_digest, get_player_risk_profile, profile_cache_key
from bettorsense.sync import run_sync
from tests.support.player_traces import cache_traces, cached_keys, erasing_alone, table_traces, traces

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _alone() -> Iterator[None]:
    """Both files erase player_42 (see ``erasing_alone``); autouse, so it is held before any planting."""
    with erasing_alone():
        yield


PLAYER = "player_42"
NEIGHBOUR = "player_43"


@pytest.fixture
def player_everywhere(configure, sandbox):
    """The player in the store (profile and history), in the cache under three keys, and in the log."""
    sandbox.state.set_config(players=60)
    run_sync()
    sandbox.state.advance_day()
    run_sync()
    staff = User.objects.create_user("auditor")
    for account in (PLAYER, NEIGHBOUR):
        record_access(user=staff, account_id=account, through="profile", purpose=f"look at {account}")
        get_player_risk_profile(account)  # from the store, cached
        get_player_risk_profile(account, fresh=True)
    # A pair neither the store nor the settings name, and a key under credentials since rotated:
    # only the backend scan finds them.
    config = get_config()
    cache = caches[config.cache_alias]
    cache.set(profile_cache_key(config, 7, 8, PLAYER), {"missing": "PlayerNotFound", "until": 0})
    cache.set(f"old-prefix:0123abcd:profile:123:456:{account_digest(PLAYER)}", {"profile": {"playerId": PLAYER}})
    return staff


def needles(account: str) -> list[str]:
    return [account, account_digest(account)]


def test_before_the_erasure_the_search_finds_the_player_in_tables_and_cache(player_everywhere):
    tables, cached = table_traces(needles(PLAYER)), cache_traces(needles(PLAYER))
    found_in = {trace.split(":")[0] for trace in [*tables, *cached]}
    assert {"bettorsense_playerriskprofile.account_id", "bettorsense_accessrecord.account_id"} <= found_in
    assert len(cached_keys(account_digest(PLAYER))) >= 3  # this test's three; Redis keeps earlier tests' too


@pytest.mark.parametrize("policy", ["delete"])
def test_erase_with_delete_leaves_nothing_anywhere(player_everywhere, configure, policy):
    configure(ERASE_REVIEWS=policy, ERASE_ACCESS_LOG=policy)
    changes = RiskProfileChange.objects.filter(profile__account_id=PLAYER).count()
    assert changes >= 1
    # Three of this test's, and on Redis any earlier test's (its keys outlive the test).
    cached = len(cached_keys(account_digest(PLAYER)))
    assert cached >= 3
    erasure = erase_player(PLAYER)
    assert erasure.complete
    assert traces([*needles(PLAYER), pseudonym(PLAYER)]) == []
    tables = {t.table: t for t in erasure.tables}
    assert tables["bettorsense.PlayerRiskProfile"].removed == 1
    assert tables["bettorsense.RiskProfileChange"].removed == changes
    assert tables["bettorsense.AccessRecord"].removed == 1
    assert sum(c.removed for c in erasure.caches) == cached and all(c.scanned for c in erasure.caches)
    # The neighbour is untouched.
    assert traces(needles(NEIGHBOUR)) != []
    assert StoredProfile.objects.filter(account_id=NEIGHBOUR).exists()
    assert AccessRecord.objects.filter(account_id=NEIGHBOUR).count() == 1


def test_erase_pseudonymises_the_access_log_by_default(player_everywhere):
    run = SyncRun.objects.order_by("id").first()
    run.error = f"BadResponse: the vendor said {PLAYER} twice; {NEIGHBOUR} once"
    run.save()
    erasure = erase_player(PLAYER)
    assert traces(needles(PLAYER)) == []
    left = traces([pseudonym(PLAYER)])
    assert sorted({t.split(":")[0] for t in left}) == [
        "bettorsense_accessrecord.account_id",
        "bettorsense_accessrecord.purpose",
        "bettorsense_syncrun.error",
    ]
    run.refresh_from_db()
    assert run.error == f"BadResponse: the vendor said {pseudonym(PLAYER)} twice; {NEIGHBOUR} once"
    record = AccessRecord.objects.get(account_id=pseudonym(PLAYER))
    assert (record.username, record.purpose) == ("auditor", f"look at {pseudonym(PLAYER)}")
    access = next(t for t in erasure.tables if t.table == "bettorsense.AccessRecord")
    assert (access.policy, access.found, access.pseudonymised, access.kept) == ("pseudonymise", 1, 1, 0)


def test_erase_can_keep_the_access_log_as_it_is(player_everywhere, configure):
    configure(ERASE_ACCESS_LOG="keep")
    erasure = erase_player(PLAYER)
    assert AccessRecord.objects.filter(account_id=PLAYER).count() == 1
    assert [t.split(":")[0] for t in traces(needles(PLAYER))] == [
        "bettorsense_accessrecord.account_id",
        "bettorsense_accessrecord.purpose",
    ]
    access = next(t for t in erasure.tables if t.table == "bettorsense.AccessRecord")
    assert (access.found, access.removed, access.kept) == (1, 0, 1)


def test_a_dry_run_changes_nothing_and_reports_what_the_erasure_does(player_everywhere, configure):
    configure(ERASE_ACCESS_LOG="delete")
    before = traces(needles(PLAYER))
    rows_before = (StoredProfile.objects.count(), RiskProfileChange.objects.count(), AccessRecord.objects.count())
    dry = erase_player(PLAYER, dry_run=True)
    assert traces(needles(PLAYER)) == before
    assert (StoredProfile.objects.count(), RiskProfileChange.objects.count(), AccessRecord.objects.count()) == (
        rows_before
    )
    real = erase_player(PLAYER)
    assert [(t.table, t.found, t.removed) for t in dry.tables] == [(t.table, t.found, t.removed) for t in real.tables]
    assert [(c.alias, c.found) for c in dry.caches] == [(c.alias, c.found) for c in real.caches]


def test_the_command_reports_per_table_and_cache(player_everywhere):
    out = StringIO()
    call_command("bettorsense_erase", PLAYER, "--dry-run", stdout=out)
    report = out.getvalue()
    assert "dry run: nothing changed" in report and "would be erased" in report
    assert "bettorsense.PlayerRiskProfile" in report and "found 1, removed 1" in report
    assert "bettorsense.AccessRecord" in report and "pseudonymise" in report
    assert StoredProfile.objects.filter(account_id=PLAYER).exists()
    out = StringIO()
    call_command("bettorsense_erase", PLAYER, stdout=out)
    assert "were erased" in out.getvalue() and not StoredProfile.objects.filter(account_id=PLAYER).exists()


def test_the_command_refuses_an_invalid_account_id(configure):
    with pytest.raises(CommandError, match="InvalidInput"):
        call_command("bettorsense_erase", "x" * 65)
