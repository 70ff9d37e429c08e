"""Sync into the local store: rate against downloading and parsing alone, and memory by population.

One run starts the sandbox in its own process and, each in a fresh child process on an empty store:

1. on loopback: downloads and parses every page of N profiles (the baseline: what the sync cannot
   beat), then syncs the same N profiles into the database (upserts, history, checkpoints);
2. the same two with the sandbox's ``slow`` fault on every batch page (``--latency``, 100 ms): the
   baseline waits for the same latency as the sync;
3. syncs 10,000 (``--small``) and N players, for each child's peak resident set size, then again
   under tracemalloc, for the peak of Python allocations.

The load average (``os.getloadavg``) is printed before and after: the machine is shared, so the
ratios of one run are what count. ``--set KEY=VALUE`` overrides a ``BETTORSENSE`` setting in every
child (``--set SYNC_PREFETCH_PAGES=0`` measures the sequential sync), for comparing options.

    .venv/bin/python bench/sync_store.py                       # PostgreSQL on 127.0.0.1, 100,000 profiles
    .venv/bin/python bench/sync_store.py --players 1000000     # the 1,000,000-player figures
    .venv/bin/python bench/sync_store.py --players 20000 --database-url sqlite:////tmp/bench.sqlite3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.ports import free_port  # noqa: E402

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/bettorsense_bench"


def ensure_postgres_database(url: str) -> None:
    if not url.startswith("postgres"):
        return
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def child(mode: str, players: int, sandbox_url: str, latency: float, overrides: dict[str, Any]) -> dict[str, float]:
    """Runs in a fresh process: one measurement on an empty store."""
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)
    call_command("createcachetable", verbosity=0)
    settings.BETTORSENSE = {
        **settings.BETTORSENSE,
        "ENVIRONMENT": "sandbox",
        "TOKEN_URL": f"{sandbox_url}/oauth/token",
        "API_URL": f"{sandbox_url}/ci/api/rg",
        "KEY_PREFIX": f"bench-sync-{os.getpid()}",
        **overrides,
    }
    from bettorsense.conf import forget_configs

    forget_configs()  # migrate's system checks read the settings before they pointed at this sandbox
    from bettorsense.models import PlayerRiskProfile, RiskProfileChange, SyncRun
    from bettorsense.sandbox import SandboxClient
    from bettorsense.services import iter_risk_profile_pages
    from bettorsense.sync import run_sync

    sandbox = SandboxClient(sandbox_url)
    sandbox.set_config(players=players)
    sandbox.clear_faults()
    if latency:
        # Every batch page waits this long before it is answered, the baseline's as the sync's.
        sandbox.add_fault(target="batch", kind="slow", delay=latency)
    tables = [
        connection.ops.quote_name(model._meta.db_table) for model in (RiskProfileChange, PlayerRiskProfile, SyncRun)
    ]
    with connection.cursor() as cursor:  # not the ORM's delete(): it would load every row to cascade
        if connection.vendor == "postgresql":
            # TRUNCATE, not DELETE: the dead rows of every earlier run stayed in the tables and their
            # indexes (a million after a few runs, autovacuum not having come by) and slowed each
            # later sync; an empty store is what this measures.
            # CASCADE: the reviews' rows refer to the profiles (none in the bench's database).
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608  (our table)
    if mode == "traced":
        tracemalloc.start()
    started = time.perf_counter()
    if mode == "download":
        count = sum(len(profiles) for _, profiles in iter_risk_profile_pages())
    else:
        count = run_sync(full=True).profiles_seen
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if mode == "traced" else 0
    sandbox.clear_faults()
    return {
        "profiles": count,
        "seconds": elapsed,
        "traced_peak_mib": peak / 2**20,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(
    mode: str, players: int, sandbox_url: str, database_url: str, latency: float, overrides: list[str]
) -> dict[str, float]:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "project.settings"}
    command = [sys.executable, __file__, "--child", mode, "--players", str(players), "--sandbox", sandbox_url]
    command += ["--latency", str(latency), *(f"--set={item}" for item in overrides)]
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=7200)
    if finished.returncode != 0:
        raise SystemExit(f"the {mode} run failed:\n{finished.stderr[-3000:]}")
    result: dict[str, float] = json.loads(finished.stdout.strip().splitlines()[-1])
    print(
        f"  ({mode}, {players} players, {latency * 1000:g} ms: {result['seconds']:.1f} s measured, "
        f"{time.perf_counter() - started:.1f} s with the child's setup)",
        flush=True,
    )
    return result


def parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)  # 0, true, 2.5
        except json.JSONDecodeError:
            overrides[key] = value  # a plain string
    return overrides


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000, help="the smaller population for the memory figure")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds of latency per page for the second pair")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a BETTORSENSE override")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument(
        "--no-traced", action="store_true", help="skip the runs under tracemalloc (at 1,000,000 players, about 18 min)"
    )
    parser.add_argument("--child", choices=["download", "sync", "traced"], help=argparse.SUPPRESS)
    parser.add_argument("--sandbox", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.players, args.sandbox, args.latency, parse_overrides(args.set))))
        return 0

    ensure_postgres_database(args.database_url)
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "bettorsense.sandbox", "--port", str(port), "--players", str(args.players)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    load_before = load()
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}: {load_before}", flush=True)

    def measure(mode: str, players: int, latency: float = 0.0) -> dict[str, float]:
        return run_child(mode, players, url, args.database_url, latency, args.set)

    try:
        time.sleep(1.0)
        download = measure("download", args.players)
        sync = measure("sync", args.players)
        slow_download = measure("download", args.players, args.latency)
        slow_sync = measure("sync", args.players, args.latency)
        small = measure("sync", args.small)
        traced = None if args.no_traced else (measure("traced", args.small), measure("traced", args.players))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    def rate(result: dict[str, float]) -> float:
        return result["profiles"] / result["seconds"]

    engine = args.database_url.split(":", 1)[0]
    ms = f"{args.latency * 1000:g} ms"
    print(f"sync into {engine}: {int(sync['profiles'])} profiles ({args.players} players, 404 cases left out)")
    if args.set:
        print(f"  settings: {', '.join(args.set)}")
    print(f"  download and parse only, loopback : {rate(download):9.0f} profiles/s ({download['seconds']:.1f} s)")
    print(f"  full sync, loopback               : {rate(sync):9.0f} profiles/s ({sync['seconds']:.1f} s)")
    print(f"  ratio, loopback (goal >= 0.5)     : {rate(sync) / rate(download):9.2f}")
    slow_seconds = slow_download["seconds"]
    print(f"  download and parse only, {ms:7} : {rate(slow_download):9.0f} profiles/s ({slow_seconds:.1f} s)")
    print(f"  full sync, {ms:7}               : {rate(slow_sync):9.0f} profiles/s ({slow_sync['seconds']:.1f} s)")
    print(f"  ratio, {ms} (goal >= 0.85)    : {rate(slow_sync) / rate(slow_download):9.2f}")
    print(
        f"  peak RSS of the sync process      : {small['max_rss_mib']:6.1f} MiB for {int(small['profiles'])} profiles, "
        f"{sync['max_rss_mib']:6.1f} MiB for {int(sync['profiles'])}: "
        f"{sync['max_rss_mib'] / small['max_rss_mib']:.2f}x (goal <= 1.2)"
    )
    if traced is not None:
        small_traced, large_traced = traced
        print(
            f"  peak traced memory                : {small_traced['traced_peak_mib']:6.1f} MiB for "
            f"{int(small_traced['profiles'])} profiles, {large_traced['traced_peak_mib']:6.1f} MiB for "
            f"{int(large_traced['profiles'])}: "
            f"{large_traced['traced_peak_mib'] / small_traced['traced_peak_mib']:.2f}x (goal <= 1.2)"
        )
    print(f"  {load_before} before, {load()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
