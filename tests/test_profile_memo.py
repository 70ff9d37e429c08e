"""The process memo in front of the profile cache, against the sandbox over real HTTP.

What a hot read costs is the bench's business (``bench/service_rate.py``); these tests pin what the
memo serves and for how long: never past ``PROFILE_MEMO_TTL`` nor its shared entry's own deadline,
never one credential set's or bookmaker's answer for another, nothing once a setting changes, a
fork happens or the player is erased, and never for ``fresh=True``. Time moves on a fake clock
(``MEMO.clock``), so no test sleeps.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command

from bettorsense.conf import get_config
from bettorsense.exceptions import AccessDenied, PlayerNotFound
from bettorsense.privacy.erasure import erase_player
from bettorsense.profile_memo import MEMO, ProfileMemo
from bettorsense.profiles import parse_profile
from bettorsense.services import account_digest, get_player_risk_profile, profile_cache_key
from tests.support.clock import FakeClock
from tests.support.player_traces import erasing_alone
from tests.support.sandbox import CLIENT_ID, CLIENT_SECRET

pytestmark = pytest.mark.django_db(transaction=True)

BRAND_B_ID = "memo-brand-b-client"
BRAND_B_SECRET = "memo-brand-b-secret-8c1f"
BRAND_B_PAIR = (777, 888)
# Erasure scans every key of the shared Redis in CI: accounts no other test erases or plants.
ERASED, NEIGHBOUR = "player_4995", "player_4996"


@pytest.fixture
def clock() -> FakeClock:
    """The memo's clock, moved by the test; it starts at the real time, the shared entries' clock."""
    return restart_clock()


def restart_clock() -> FakeClock:
    """A new memo clock at the real time now: the shared deadlines (on the real clock) are then
    seen by the memo as they are, give or take the milliseconds until the next put."""
    fake = FakeClock(time.time())
    MEMO.clock = fake
    return fake


def api_calls(sandbox: Any, account: str | None = None) -> int:
    return len([r for r in list(sandbox.state.requests) if r.route == "profile" and account in (None, r.account_id)])


def shared_key(account: str, client: str = "default", pair: tuple[int, int] = (123, 456)) -> str:
    return profile_cache_key(get_config(client), *pair, account)


def drop_shared(account: str, **kwargs: Any) -> None:
    """Delete the shared cache's entry: only the memo can serve it now."""
    config = get_config()
    cache = caches[config.profile_cache_alias]
    key = shared_key(account, **kwargs)
    cache.delete(key)
    assert cache.get(key) is None


def test_a_hot_read_is_served_without_the_shared_cache_until_the_ttl(configure, sandbox, clock):
    configure(PROFILE_MEMO_TTL=5)
    first = get_player_risk_profile("player_1")
    assert first.source == "api" and len(MEMO) == 1  # the answer written to the cache is also memoised
    drop_shared("player_1")
    for _ in range(3):
        again = get_player_risk_profile("player_1")
        assert again == first and again.source == "cache"
    clock.advance(4.9)
    assert get_player_risk_profile("player_1").source == "cache"
    assert api_calls(sandbox) == 1
    clock.advance(0.2)  # past the TTL: the shared cache is read again, finds nothing, asks the API
    assert get_player_risk_profile("player_1").source == "api"
    assert api_calls(sandbox) == 2


def test_after_the_ttl_the_shared_entry_is_read_again_and_checked(configure, sandbox, clock):
    """A forged entry planted behind a memo entry is not seen until the TTL is over, then refused."""
    configure(PROFILE_MEMO_TTL=5)
    get_player_risk_profile("player_2")
    caches[get_config().profile_cache_alias].set(shared_key("player_2"), "bs1.forged", 600)
    assert get_player_risk_profile("player_2").source == "cache"  # the memo's copy
    clock.advance(5.1)
    assert get_player_risk_profile("player_2").source == "api"  # the forged entry was read and refused
    assert api_calls(sandbox) == 2


def test_with_no_memo_entry_a_planted_entry_is_read_at_once(configure, sandbox):
    """What the cache tests rely on: a process whose memo holds nothing reads the shared entry."""
    configure()
    get_player_risk_profile("player_3")
    MEMO.clear()  # as another process would be
    caches[get_config().profile_cache_alias].set(shared_key("player_3"), "bs1.forged", 600)
    assert get_player_risk_profile("player_3").source == "api"
    assert api_calls(sandbox) == 2


def test_an_entry_read_from_the_shared_cache_is_memoised(configure, sandbox, clock):
    configure()
    get_player_risk_profile("player_4")
    MEMO.clear()
    assert get_player_risk_profile("player_4").source == "cache"  # read from the shared cache
    assert len(MEMO) == 1
    drop_shared("player_4")
    assert get_player_risk_profile("player_4").source == "cache"  # now from the memo
    assert api_calls(sandbox) == 1


def test_the_size_bound_drops_the_oldest_entry(configure, sandbox, clock):
    configure(PROFILE_MEMO_SIZE=2)
    accounts = ["player_5", "player_6", "player_7"]
    for account in accounts:
        get_player_risk_profile(account)
        clock.advance(0.1)
    assert len(MEMO) == 2
    for account in accounts:
        drop_shared(account)
    assert [get_player_risk_profile(a).source for a in accounts[1:]] == ["cache", "cache"]
    assert get_player_risk_profile("player_5").source == "api"  # the oldest was dropped
    assert len(MEMO) == 2
    assert get_player_risk_profile("player_6").source == "api"  # player_5's put dropped the next oldest


def test_ttl_zero_disables_the_memo(configure, sandbox):
    configure(PROFILE_MEMO_TTL=0)
    get_player_risk_profile("player_8")
    assert get_player_risk_profile("player_8").source == "cache"  # the shared cache still works
    assert len(MEMO) == 0
    drop_shared("player_8")
    assert get_player_risk_profile("player_8").source == "api"


def test_fresh_neither_reads_nor_writes_the_memo(configure, sandbox, clock):
    configure()
    assert get_player_risk_profile("player_9", fresh=True).source == "api"
    assert len(MEMO) == 0  # fresh leaves the cache, and so the memo, alone
    get_player_risk_profile("player_9")
    assert len(MEMO) == 1
    assert get_player_risk_profile("player_9", fresh=True).source == "api"
    assert api_calls(sandbox) == 3


def test_a_setting_change_empties_the_memo(configure, sandbox, settings):
    configure()
    get_player_risk_profile("player_10")
    assert len(MEMO) == 1
    configure(READ_TIMEOUT=9.0)  # any change to BETTORSENSE
    assert len(MEMO) == 0
    get_player_risk_profile("player_10")
    assert len(MEMO) == 1
    settings.SECRET_KEY = "another key that seals the cache differently " + "x" * 20
    assert len(MEMO) == 0


def test_a_forked_child_starts_with_an_empty_memo(configure, sandbox):
    configure()
    get_player_risk_profile("player_11")
    assert len(MEMO) == 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the memo's size and leave at once, running nothing of pytest's
        try:
            os.write(write_end, str(len(MEMO)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        seen = os.read(read_end, 16).decode()
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert seen == "0"
    assert len(MEMO) == 1  # the parent's is untouched


def test_another_credential_set_or_bookmaker_pair_never_gets_the_memos_answer(configure, sandbox):
    sandbox.state.add_client(BRAND_B_ID, BRAND_B_SECRET, bookmakers=[BRAND_B_PAIR])
    sandbox.state.add_client(CLIENT_ID, CLIENT_SECRET, bookmakers=[(123, 456), (124, 456)])
    try:
        configure(
            CLIENTS={
                "brand-b": {
                    "CLIENT_ID": BRAND_B_ID,
                    "CLIENT_SECRET": BRAND_B_SECRET,
                    "BOOKMAKER_ID": BRAND_B_PAIR[0],
                    "SUB_BOOKMAKER_ID": BRAND_B_PAIR[1],
                }
            }
        )
        get_player_risk_profile("player_12")
        assert get_player_risk_profile("player_12").source == "cache"
        assert get_player_risk_profile("player_12", client="brand-b").source == "api"
        assert get_player_risk_profile("player_12", bookmaker_id=124, sub_bookmaker_id=456).source == "api"
        assert len(MEMO) == 3
        calls = [(r.client_id, r.bookmaker_id) for r in sandbox.state.requests if r.route == "profile"]
        assert calls == [(CLIENT_ID, "123"), (BRAND_B_ID, "777"), (CLIENT_ID, "124")]
        # Each answer is its own: the memo of one pair is not another's, though the account is the same.
        with pytest.raises(AccessDenied):
            get_player_risk_profile("player_12", client="brand-b", bookmaker_id=123, sub_bookmaker_id=456)
        assert get_player_risk_profile("player_12", client="brand-b").source == "cache"
    finally:
        sandbox.state.add_client(CLIENT_ID, CLIENT_SECRET)
        with sandbox.state.lock:
            sandbox.state.clients.pop(BRAND_B_ID, None)


def test_an_entry_never_outlives_its_shared_entrys_freshness(configure, sandbox):
    boundary = datetime.now(UTC) + timedelta(seconds=4)
    configure(RECOMPUTE_AT_UTC=boundary.time().isoformat(), PROFILE_MEMO_TTL=60)
    clock = restart_clock()
    get_player_risk_profile("player_13")
    drop_shared("player_13")
    clock.advance(1.0)
    assert get_player_risk_profile("player_13").source == "cache"
    clock.advance(3.5)  # past the recompute boundary, well within the TTL
    assert get_player_risk_profile("player_13").source == "api"


def test_a_remembered_404_ends_with_its_shared_entry(configure, sandbox):
    configure(NOT_FOUND_TTL=3, PROFILE_MEMO_TTL=60)
    clock = restart_clock()
    with pytest.raises(PlayerNotFound):
        get_player_risk_profile("nobody")
    assert len(MEMO) == 1
    drop_shared("nobody")
    clock.advance(1.0)
    with pytest.raises(PlayerNotFound, match="cached answer"):
        get_player_risk_profile("nobody")  # from the memo
    assert api_calls(sandbox) == 1
    clock.advance(2.5)  # past NOT_FOUND_TTL, well within the memo's TTL
    with pytest.raises(PlayerNotFound):
        get_player_risk_profile("nobody")
    assert api_calls(sandbox) == 2


def test_erasure_drops_the_players_entries_in_this_process(configure, sandbox, clock):
    configure()
    with erasing_alone():
        for account in (ERASED, NEIGHBOUR):
            get_player_risk_profile(account)
        assert len(MEMO) == 2
        dry = erase_player(ERASED, dry_run=True)
        assert dry.memo == 1 and len(MEMO) == 2  # counted, kept
        erasure = erase_player(ERASED)
        assert erasure.memo == 1 and erasure.memo_ttl == 5.0
        assert MEMO.forget_account(account_digest(ERASED), dry_run=True) == 0
        assert get_player_risk_profile(ERASED).source == "api"  # neither the memo nor the cache held it
        drop_shared(NEIGHBOUR)
        assert get_player_risk_profile(NEIGHBOUR).source == "cache"  # the neighbour's entry stays
        out = StringIO()
        call_command("bettorsense_erase", ERASED, stdout=out)
        report = out.getvalue()
    assert "this process memo" in report and "found 1, removed 1" in report
    assert "PROFILE_MEMO_TTL (5 s)" in report


def test_the_memo_logs_nothing_about_a_profile(configure, sandbox, clock, caplog):
    configure()
    with caplog.at_level(logging.DEBUG):
        profile = get_player_risk_profile("player_14")
        for _ in range(3):
            get_player_risk_profile("player_14")
        clock.advance(10)
        get_player_risk_profile("player_14")
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bettorsense.") and ".sandbox" not in r.name]
    assert not [r for r in caplog.records if r.name == "bettorsense.profile_memo"]
    assert not [m for m in ours if "player_14" in m or repr(profile) in m]


def test_a_wall_clock_set_back_does_not_lengthen_an_entry():
    """The TTL runs on the monotonic clock: setting the wall clock back changes nothing."""
    fake = FakeClock(1_800_000_000.0)
    memo = ProfileMemo(clock=fake)
    profile = parse_profile({"playerId": "p", "riskScore": 60})
    memo.put("k", profile, until=fake.now() + 3600, ttl=5, size=10)
    fake._wall -= 3600  # the wall clock set back an hour; monotonic time goes on
    fake.advance(5.1)
    assert memo.get("k") is None and len(memo) == 0


def test_threads_reading_writing_and_erasing_at_once_keep_the_bound():
    fake = FakeClock(1_800_000_000.0)
    memo = ProfileMemo(clock=fake)
    profile = parse_profile({"playerId": "p", "riskScore": 60})
    failures: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(3000):
                key = f"prefix:profile:1:2:{rng.randrange(200):032x}"
                action = rng.random()
                if action < 0.5:
                    answer = memo.get(key)
                    assert answer is None or answer is profile
                elif action < 0.95:
                    memo.put(key, profile, fake.now() + 60, ttl=1, size=50)
                    assert len(memo) <= 50
                else:
                    memo.forget_account(key.rsplit(":", 1)[1])
                if rng.random() < 0.01:
                    fake.advance(0.5)
        except BaseException as err:  # what the test looks for
            failures.append(err)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(memo) <= 50
