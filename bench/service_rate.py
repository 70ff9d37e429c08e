"""Calls per second through get_player_risk_profile(fresh=True) against a plain requests.Session.

All three sides call the same single-profile endpoint of one sandbox, which runs in its own
process so that it does not share the interpreter lock with the caller. The plain side sends a
fixed valid token through ``Session.get``; the lean loop re-sends one prepared request; ours goes
through the whole service layer: validation, the shared token, the breaker, the retry loop, parsing
into dataclasses, metrics and telemetry. The measurement is paired: in each round the sides take
turns, 25 calls at a time in a rotating order, so that a slow spell of the machine or the sandbox
falls on all of them; each round gives its own ratios, and the median of the rounds is reported
with the lowest and the highest. The goals: at least 0.9x the plain session and 0.85x the lean loop.

Then the hot reads, per call against a plain ``cache.get`` of the same entry on the same cache:
the token as the call path reads it (its process memo; goal at least 10x faster than the
``cache.get``), and a profile served from the profile cache (``fresh=False``) as the call path reads
it: from the process memo (``PROFILE_MEMO_TTL``, default 5 s; each entry re-read from the shared cache
once its TTL is over, which the timing includes), goal at least 10x faster than the ``cache.get``;
and with the memo off (``PROFILE_MEMO_TTL=0``: the entry read, unsealed and parsed on every call),
shown for what it costs.

    .venv/bin/python bench/service_rate.py                     # embedded defaults (SQLite, database cache)
    CACHE_URL=redis://127.0.0.1:6379/1 .venv/bin/python bench/service_rate.py
    .venv/bin/python bench/service_rate.py --profile 25        # then cProfile the fresh path, top 25
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.ports import free_port  # noqa: E402


def wait_for(url: str) -> None:
    import requests

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"sandbox did not start at {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per side per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--block", type=int, default=25, help="calls per turn: the sides take turns")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="then cProfile the fresh path: top N")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bettorsense-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "bettorsense.sandbox", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/_sandbox/health")
        return run(base, args.calls, args.rounds, args.block, args.profile)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


def best_per_call(statement: str, namespace: dict[str, Any], repeat: int = 7, target: float = 0.25) -> float:
    """Seconds per call of ``statement``: calibrated so one repeat lasts ``target`` s; best of ``repeat``."""
    timer = timeit.Timer(statement, globals=namespace)
    number, elapsed = timer.autorange()
    number = max(number, int(number * target / max(elapsed, 1e-9)))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def paired_round(sides: dict[str, Callable[[int], None]], calls: int, block_size: int) -> dict[str, float]:
    """Calls per second of each side in one round: the sides take turns, ``block_size`` calls at a time.

    The order of the turns rotates, so no side always follows another. A slow spell of the machine
    or of the sandbox falls on every side alike, and each round's ratios compare like with like.
    """
    names = list(sides)
    spent = dict.fromkeys(names, 0.0)
    done = dict.fromkeys(names, 0)
    turn = 0
    while any(done[name] < calls for name in names):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            count = min(block_size, calls - done[name])
            if count:
                started = time.perf_counter()
                sides[name](count)
                spent[name] += time.perf_counter() - started
                done[name] += count
        turn += 1
    return {name: calls / spent[name] for name in names}


def spread(ratios: list[float]) -> str:
    return f"  rounds {ratios[0]:.2f} to {ratios[-1]:.2f}"


def run(base: str, calls: int, rounds: int, block_size: int, profile: int) -> int:
    import django
    import requests
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import override_settings

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)
    call_command("createcachetable", verbosity=0)
    # Through override_settings, so that setting_changed drops the Config that django.setup() and
    # migrate's checks have already resolved and memoised.
    override_settings(
        BETTORSENSE={
            **settings.BETTORSENSE,
            "ENVIRONMENT": "sandbox",
            "TOKEN_URL": f"{base}/oauth/token",
            "API_URL": f"{base}/ci/api/rg",
            "KEY_PREFIX": f"bench-{os.getpid()}",
        }
    ).enable()
    from bettorsense.services import get_player_risk_profile
    from bettorsense.tokens.manager import get_access_token

    account = "player_1"
    url = f"{base}/ci/api/rg/v1/Operator/PlayerRiskProfile/bookmakers/123/sub-bookmakers/456/accountid/{account}"
    plain = requests.Session()
    headers = {"Authorization": f"Bearer {get_access_token()}", "Accept": "application/json"}

    def plain_block(count: int) -> None:
        for _ in range(count):
            response = plain.get(url, headers=headers, timeout=10)
            response.raise_for_status()
            response.json()

    # A leaner baseline: one prepared request re-sent, environment settings read once. It shows
    # what the service layer itself costs, beyond what requests.Session.get spends per call.
    prepared = plain.prepare_request(requests.Request("GET", url, headers=headers))
    environment = plain.merge_environment_settings(url, {}, None, None, None)

    def lean_block(count: int) -> None:
        for _ in range(count):
            response = plain.send(prepared, timeout=10, **environment)
            response.raise_for_status()
            response.json()

    def ours_block(count: int) -> None:
        for _ in range(count):
            get_player_risk_profile(account, fresh=True)

    sides = {"plain": plain_block, "ours": ours_block, "lean": lean_block}
    for block in sides.values():  # warm up connections, caches and the token
        block(block_size)
    rounds_taken = [paired_round(sides, calls, block_size) for _ in range(rounds)]
    rate = {name: median(r[name] for r in rounds_taken) for name in sides}
    to_lean = sorted(r["ours"] / r["lean"] for r in rounds_taken)
    to_plain = sorted(r["ours"] / r["plain"] for r in rounds_taken)
    cache = settings.CACHES[settings.BETTORSENSE.get("CACHE_ALIAS", "default")]["BACKEND"].rsplit(".", 1)[-1]
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(
        f"service rate: {rounds} rounds x {calls} calls a side, in turns of {block_size},"
        f" cache {cache}, database {database}; median of rounds"
    )
    print(f"  plain requests.Session, fixed token : {rate['plain']:8.1f} calls/s")
    print(f"  get_player_risk_profile(fresh=True) : {rate['ours']:8.1f} calls/s")
    print(f"  lean Session.send, prepared request : {rate['lean']:8.1f} calls/s")
    print(f"  ratio to plain Session              : {median(to_plain):8.2f}  (goal >= 0.90){spread(to_plain)}")
    print(f"  ratio to lean Session.send          : {median(to_lean):8.2f}  (goal >= 0.85){spread(to_lean)}")
    hot_reads(account)
    if profile:
        profiled = cProfile.Profile()
        profiled.runcall(lambda: [get_player_risk_profile(account, fresh=True) for _ in range(calls * rounds)])
        print(f"cProfile of {calls * rounds} calls of get_player_risk_profile(fresh=True), by own time:")
        pstats.Stats(profiled, stream=sys.stdout).sort_stats("tottime").print_stats(profile)
    return 0


def hot_reads(account: str) -> None:
    """The token's read on the call path and a cached profile's, each against a cache.get of its entry."""
    from django.conf import settings
    from django.core.cache import caches
    from django.test.utils import override_settings

    from bettorsense.conf import get_config
    from bettorsense.services import bookmaker_ids, get_player_risk_profile, profile_cache_key
    from bettorsense.tokens.manager import get_token_manager
    from bettorsense.tokens.shared import SharedTokenCache

    config = get_config()
    manager = get_token_manager(config)  # the one client/api.py asks on every call
    token_cache, token_key = caches[config.cache_alias], SharedTokenCache(config).token_key
    assert token_cache.get(token_key) is not None, "the token is not in the cache"
    get_player_risk_profile(account)  # asks the API once and caches the profile
    profile_cache = caches[config.profile_cache_alias]
    profile_key = profile_cache_key(config, *bookmaker_ids(config, None, None), account)
    assert profile_cache.get(profile_key) is not None, "the profile is not in the profile cache"
    assert get_player_risk_profile(account).source == "cache"
    namespace = {
        "get_token": manager.get_token,
        "token_get": token_cache.get,
        "token_key": token_key,
        "get_player_risk_profile": get_player_risk_profile,
        "account": account,
        "profile_get": profile_cache.get,
        "profile_key": profile_key,
    }
    token_ours = best_per_call("get_token()", namespace)
    token_plain = best_per_call("token_get(token_key)", namespace)
    profile_ours = best_per_call("get_player_risk_profile(account)", namespace)
    profile_plain = best_per_call("profile_get(profile_key)", namespace)
    with override_settings(BETTORSENSE={**settings.BETTORSENSE, "PROFILE_MEMO_TTL": 0}):
        assert get_player_risk_profile(account).source == "cache"
        profile_unmemoised = best_per_call("get_player_risk_profile(account)", namespace)
    memo_ttl = get_config().profile_memo_ttl
    print("hot reads, per call (best of 7), against a cache.get of the same entry on the same cache:")
    print(f"  token, as the call path reads it    : {token_ours * 1e6:8.2f} us")
    print(f"  cache.get of the token's entry      : {token_plain * 1e6:8.2f} us")
    print(f"  cache.get / token read              : {token_plain / token_ours:8.0f}x  (goal >= 10)")
    print(
        f"  get_player_risk_profile(), cached   : {profile_ours * 1e6:8.2f} us  (memo, PROFILE_MEMO_TTL {memo_ttl:g} s)"
    )
    print(f"  cache.get of the profile's entry    : {profile_plain * 1e6:8.2f} us")
    print(f"  cache.get / cached profile read     : {profile_plain / profile_ours:8.1f}x  (goal >= 10)")
    print(f"  the same, PROFILE_MEMO_TTL=0        : {profile_unmemoised * 1e6:8.2f} us")
    print(
        f"  cache.get / read without the memo   : {profile_plain / profile_unmemoised:8.2f}x  (reads the cache each call)"  # noqa: E501
    )


if __name__ == "__main__":
    sys.exit(main())
