"""Sync into the local store: rate against downloading and parsing alone, and memory by population.

One run starts the sandbox in its own process and, each in a fresh child process on an empty store:

1. downloads and parses every page of N profiles (the baseline: what the sync cannot beat);
2. syncs the same N profiles into the database (upserts, history, checkpoints);
3. syncs 10,000 and N profiles under tracemalloc, for the peak of Python allocations, and reports
   each child's peak resident set size too.

    .venv/bin/python bench/sync_store.py                       # PostgreSQL on 127.0.0.1, 100,000 profiles
    .venv/bin/python bench/sync_store.py --players 20000 --database-url sqlite:////tmp/bench.sqlite3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/bettorsense_bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_postgres_database(url: str) -> None:
    if not url.startswith("postgres"):
        return
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def child(mode: str, players: int, sandbox_url: str) -> dict[str, float]:
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
    }
    from bettorsense.models import PlayerRiskProfile, RiskProfileChange, SyncRun
    from bettorsense.sandbox import SandboxClient
    from bettorsense.services import iter_risk_profile_pages
    from bettorsense.sync import run_sync

    SandboxClient(sandbox_url).set_config(players=players)
    with connection.cursor() as cursor:  # plain DELETEs: the ORM's would load every row to cascade
        for model in (RiskProfileChange, PlayerRiskProfile, SyncRun):
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")  # noqa: S608  (our table)
    if mode == "memory":
        tracemalloc.start()
    started = time.perf_counter()
    if mode == "download":
        count = sum(len(profiles) for _, profiles in iter_risk_profile_pages())
    else:
        count = run_sync(full=True).profiles_seen
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if mode == "memory" else 0
    return {
        "profiles": count,
        "seconds": elapsed,
        "traced_peak_mib": peak / 2**20,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(mode: str, players: int, sandbox_url: str, database_url: str) -> dict[str, float]:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "project.settings"}
    finished = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--players", str(players), "--sandbox", sandbox_url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if finished.returncode != 0:
        raise SystemExit(f"the {mode} run failed:\n{finished.stderr[-3000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000, help="the smaller population for the memory figure")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--child", choices=["download", "sync", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--sandbox", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.players, args.sandbox)))
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
    try:
        time.sleep(1.0)
        download = run_child("download", args.players, url, args.database_url)
        sync = run_child("sync", args.players, url, args.database_url)
        small = run_child("memory", args.small, url, args.database_url)
        large = run_child("memory", args.players, url, args.database_url)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    engine = args.database_url.split(":", 1)[0]
    download_rate = download["profiles"] / download["seconds"]
    sync_rate = sync["profiles"] / sync["seconds"]
    print(f"sync into {engine}: {int(sync['profiles'])} profiles ({args.players} players, 404 cases left out)")
    print(f"  download and parse only : {download_rate:9.0f} profiles/s")
    print(f"  full sync into the store: {sync_rate:9.0f} profiles/s")
    print(f"  ratio                   : {sync_rate / download_rate:9.2f}")
    print(
        f"  peak traced memory      : {small['traced_peak_mib']:6.1f} MiB for {int(small['profiles'])} profiles, "
        f"{large['traced_peak_mib']:6.1f} MiB for {int(large['profiles'])}"
    )
    print(
        f"  peak RSS of the process : {small['max_rss_mib']:6.1f} MiB for {int(small['profiles'])} profiles, "
        f"{large['max_rss_mib']:6.1f} MiB for {int(large['profiles'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
