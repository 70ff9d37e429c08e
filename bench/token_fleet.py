"""Benchmark of the fleet's shared token against the usual per-process token holder, in one run.

    .venv/bin/python bench/token_fleet.py [--processes 8] [--threads 2] [--lifetime 3] [--lifetimes 6]

(a) Token requests per token lifetime, ideal 1, for N worker processes that ask for the token in
    a loop: first with ``bettorsense.tokens.get_access_token()`` (one token for the fleet, through
    the Django cache), then with a naive holder in each process that requests its own token when
    the one it holds enters the same renewal window. Both run against the local sandbox with a
    short token lifetime; the sandbox counts the token requests.
(b) The hot path: ``get_access_token()`` against a plain ``cache.get`` of the token's key on the
    same cache, per call, best of several repeats (``timeit``, i.e. ``time.perf_counter``).

The environment is the demo project's, read from ``DATABASE_URL`` and ``CACHE_URL``: absent, a
temporary SQLite file and Django's database cache in it (``createcachetable`` is run). With
``CACHE_URL=redis://127.0.0.1:6379/1`` the cache is Redis. Each run uses key prefixes of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bettorsense.sandbox import SandboxServer, SandboxState  # noqa: E402  (after the path set-up)
from harness.fleet import child_env, effective_lifetime, run_fleet, sandbox_overrides, summarise  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8, help="Worker processes per holder (default 8).")
    parser.add_argument("--threads", type=int, default=2, help="Threads per worker process (default 2).")
    parser.add_argument("--lifetime", type=float, default=3.0, help="Sandbox token lifetime in seconds (default 3).")
    parser.add_argument("--lifetimes", type=float, default=6.0, help="Lifetimes each fleet runs for (default 6).")
    parser.add_argument("--repeat", type=int, default=7, help="Repeats of each hot-path timing (default 7).")
    return parser.parse_args()


def set_up_django(workdir: Path, overrides: dict[str, Any]) -> str:
    """Configure the environment, set Django up in this process and create the cache table."""
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.setdefault("CELERY_BROKER_DIR", str(workdir / "broker"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "harness.fleet_settings"
    os.environ["BETTORSENSE_TEST_OVERRIDES"] = json.dumps(overrides)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("createcachetable", verbosity=0)
    return os.environ["DATABASE_URL"]


def fleet_phase(
    server: SandboxServer, database: str, workdir: Path, holder: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Run N processes with ``holder``; return the sandbox's token request count and the span."""
    server.state.reset()
    server.state.set_config(token_lifetime=args.lifetime, enforce_reuse=False)
    env = child_env(sandbox_overrides(server), database=database)
    log_dir = workdir / holder
    log_dir.mkdir()
    reports = run_fleet(
        env,
        log_dir,
        processes=args.processes,
        threads=args.threads,
        run_for=args.lifetimes * args.lifetime,
        holder=holder,
    )
    fleet = summarise(reports)
    stats = server.state.stats()
    requests = sum(client["total"] for client in stats["token_requests"].values())
    lifetimes = fleet["duration"] / effective_lifetime(server.state, args.lifetime)
    return {
        "holder": holder,
        "processes": fleet["processes"],
        "calls": fleet["calls"],
        "errors": fleet["errors"],
        "error_samples": fleet["error_samples"],
        "requests": requests,
        "issued": stats["tokens"]["issued"],
        "duration": fleet["duration"],
        "lifetimes": lifetimes,
        "per_lifetime": requests / lifetimes if lifetimes else float("nan"),
    }


def best_per_call(statement: str, namespace: dict[str, Any], repeat: int, target: float = 0.25) -> float:
    """Seconds per call of ``statement``: calibrated so one repeat lasts ``target`` s; best of ``repeat``."""
    timer = timeit.Timer(statement, globals=namespace)
    number, elapsed = timer.autorange()
    number = max(number, int(number * target / max(elapsed, 1e-9)))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def hot_path(server: SandboxServer, repeat: int) -> dict[str, float]:
    from django.core.cache import caches

    from bettorsense import tokens
    from bettorsense.conf import get_config
    from bettorsense.tokens.shared import SharedTokenCache

    server.state.reset()
    server.state.set_config(token_lifetime=600, enforce_reuse=True)
    config = get_config()
    tokens.get_access_token()  # fetch once, then everything below is the steady state
    cache = caches[config.cache_alias]
    key = SharedTokenCache(config).token_key
    assert cache.get(key) is not None, "the token is not in the cache"
    namespace = {"get_access_token": tokens.get_access_token, "cache_get": cache.get, "key": key}
    memo = best_per_call("get_access_token()", namespace, repeat)
    cache_get = best_per_call("cache_get(key)", namespace, repeat)
    # Steady state over more than LOCAL_RECHECK, so the periodic re-reads of the cache are included.
    calls, started = 0, time.perf_counter()
    deadline = started + config.local_recheck + 1.0
    while time.perf_counter() < deadline:
        for _ in range(1000):
            tokens.get_access_token()
        calls += 1000
    sustained = (time.perf_counter() - started) / calls
    requests = sum(client["total"] for client in server.state.stats()["token_requests"].values())
    return {
        "memo": memo,
        "sustained": sustained,
        "cache_get": cache_get,
        "requests": requests,
        "recheck": config.local_recheck,
    }


def describe_environment(database: str, args: argparse.Namespace) -> list[str]:
    from django.conf import settings

    cache = settings.CACHES["default"]
    db = settings.DATABASES["default"]
    return [
        f"cache:    {cache['BACKEND']} ({cache.get('LOCATION')})",
        f"database: {db['ENGINE']} ({db['NAME']})",
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        f"fleet:    {args.processes} processes x {args.threads} threads, sandbox token lifetime {args.lifetime:g} s, "
        f"{args.lifetimes:g} lifetimes per holder",
    ]


def print_report(env_lines: list[str], phases: list[dict[str, Any]], hot: dict[str, float]) -> None:
    print("bettorsense token fleet benchmark")
    for line in env_lines:
        print("  " + line)
    print()
    print("(a) token requests per token lifetime (ideal: 1)")
    print(f"  {'holder':<38}{'calls':>10}{'errors':>8}{'requests':>10}{'lifetimes':>11}{'per lifetime':>14}")
    names = {"shared": "shared: bettorsense get_access_token()", "naive": "baseline: naive per-process holder"}
    for phase in phases:
        errors = sum(phase["errors"].values())
        print(
            f"  {names[phase['holder']]:<38}{phase['calls']:>10}{errors:>8}{phase['requests']:>10}"
            f"{phase['lifetimes']:>11.2f}{phase['per_lifetime']:>14.2f}"
        )
    by_holder = {phase["holder"]: phase for phase in phases}
    if by_holder["shared"]["per_lifetime"]:
        ratio = by_holder["naive"]["per_lifetime"] / by_holder["shared"]["per_lifetime"]
        print(f"  baseline / shared: {ratio:.1f}x more token requests without the shared token")
    for phase in phases:
        if phase["errors"]:
            print(f"  ! {phase['holder']} errors: {phase['errors']} {phase['error_samples'][:2]}")
    print()
    print("(b) hot path, per call (best of repeats)")
    print(f"  {'operation':<52}{'per call':>12}{'vs cache.get':>14}")
    rows = [
        ("cache.get(token key) on the same cache", hot["cache_get"]),
        ("get_access_token(), memoised", hot["memo"]),
        (f"get_access_token(), {hot['recheck'] + 1:g} s run incl. cache re-reads", hot["sustained"]),
    ]
    for label, seconds in rows:
        print(f"  {label:<52}{seconds * 1e6:>9.3f} us{seconds / hot['cache_get']:>13.4f}x")
    print(
        f"  cache.get / get_access_token(): {hot['cache_get'] / hot['memo']:.0f}x "
        f"(token requests during the hot path: {hot['requests']})"
    )


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bettorsense-bench-"))
    server = SandboxServer(SandboxState(token_lifetime=args.lifetime), host="127.0.0.1", port=0).start()
    try:
        hot_overrides = sandbox_overrides(server, KEY_PREFIX=f"bsbench-{uuid.uuid4().hex[:10]}")
        database = set_up_django(workdir, hot_overrides)
        env_lines = describe_environment(database, args)
        print("running: shared fleet ...", file=sys.stderr, flush=True)
        phases = [fleet_phase(server, database, workdir, "shared", args)]
        print("running: naive baseline fleet ...", file=sys.stderr, flush=True)
        phases.append(fleet_phase(server, database, workdir, "naive", args))
        print("running: hot path ...", file=sys.stderr, flush=True)
        hot = hot_path(server, args.repeat)
    finally:
        server.stop()
    print_report(env_lines, phases, hot)
    return 1 if any(phase["errors"] for phase in phases) else 0


if __name__ == "__main__":
    sys.exit(main())
