"""``python -m e2e``: run the end-to-end scenarios, print the results table, exit 1 if any failed.

make e2e                                  # every scenario but those in ON_REQUEST_ONLY on PostgreSQL +
                                          # Redis, then scenario 1 on the embedded defaults, then the
                                          # leak search over all of them
make e2e SCENARIO=3                       # one scenario (or a list: SCENARIO=1,2)
make e2e E2E_PROFILE=embedded SCENARIO=1  # SQLite + database cache + filesystem broker only
.venv/bin/python -m e2e --help
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .cluster import ROOT, Profile, Timing, manage, postgres_database
from .results import ScenarioResult, failure_summary, render
from .scenarios import Context

Runner = Callable[[Context, ScenarioResult], None]


#: Scenarios run only when named (``SCENARIO=11``), not by a bare ``make e2e``, and why.
ON_REQUEST_ONLY: dict[int, str] = {}


def _scenarios() -> dict[int, tuple[str, Runner]]:
    from . import scenarios

    return {
        1: ("Steady state", scenarios.steady_state),
        2: ("Beat stopped mid-run", scenarios.beat_stopped),
        3: ("Token endpoint down for two lifetimes", scenarios.token_outage),
        4: ("Redis stopped mid-run, then started again", scenarios.redis_outage),
        5: ("API faults: 503/429 bursts, revoked token, breaker", scenarios.api_faults),
        6: ("Bad input at the demo's edge", scenarios.bad_input),
        7: ("Leaks: secrets and tokens in every log and answer", scenarios.leak_search),
        8: ("Token endpoint answers Retry-After 10^12, then heals", scenarios.huge_retry_after),
        9: ("Rolling SECRET_KEY rotation: half the fleet on each key", scenarios.key_rotation),
        10: ("django-redis with IGNORE_EXCEPTIONS, Redis stopped", scenarios.silent_redis_outage),
        11: ("Clock skew: web, worker and beat 45 s ahead, then 45 s behind", scenarios.clock_skew),
        12: ("Two sync runs started at once", scenarios.two_syncs_at_once),
        13: ("Two credential sets, one set's token endpoint failing", scenarios.second_set_fails),
    }


# Scenarios run on the embedded defaults too (SQLite, database cache, filesystem broker).
EMBEDDED = (1,)
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"


def _migrate(profile: Profile) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BETTORSENSE_", "CELERY_", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "e2e.settings",
            "DATABASE_URL": profile.database_url,
            "CACHE_URL": "dbcache://bettorsense_cache",
            "SECRET_KEY": "e2e-migrate",
        }
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    if not profile.redis:
        manage(env, "createcachetable")


def _run(number: int, profile: Profile, ctx: Context, results: list[ScenarioResult]) -> None:
    title, runner = _scenarios()[number]
    command = f"make e2e SCENARIO={number}"
    if number in EMBEDDED:  # it runs on both profiles by default
        command += f" E2E_PROFILE={profile.name}"
    result = ScenarioResult(number, title, profile.name, command)
    results.append(result)
    print(f"\n=== scenario {number}: {title} ({profile.name})", flush=True)
    started = time.time()
    try:
        runner(ctx, result)
    except Exception as err:  # the table shows it; the next scenario still runs
        result.fail(err)
    result.seconds = time.time() - started
    print(f"=== scenario {number}: {'pass' if result.passed else 'FAIL'} in {result.seconds:.0f} s", flush=True)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # like Ctrl-C: every finally runs, so every process group is stopped


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    parser = argparse.ArgumentParser(prog="python -m e2e", description="End-to-end scenarios under load and faults.")
    parser.add_argument("--scenario", default="", help="Comma-separated scenario numbers (default: all).")
    parser.add_argument("--profile", choices=("all", "services", "embedded"), default="all")
    parser.add_argument("--lifetime", type=float, default=20.0, help="Sandbox token lifetime, s (default 20).")
    parser.add_argument("--refresh-every", type=float, default=0.5, help="Beat interval, s (default 0.5).")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("E2E_PG_URL", DEFAULT_PG),
        help="PostgreSQL maintenance database; the suite creates and drops a database of its own.",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the logs and bodies (the path is printed).")
    parser.add_argument("--results", default=str(ROOT / "artifacts" / "e2e-results.md"))
    args = parser.parse_args(argv)

    known = _scenarios()
    chosen = [int(n) for n in args.scenario.replace(" ", "").split(",") if n]
    if not chosen:
        chosen = [n for n in sorted(known) if n not in ON_REQUEST_ONLY]
        for number, why in ON_REQUEST_ONLY.items():
            print(f"e2e: scenario {number} runs only when named (SCENARIO={number}): {why}", flush=True)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {sorted(known)}")
    timing = Timing(lifetime=args.lifetime, refresh_every=args.refresh_every)
    workdir = Path(tempfile.mkdtemp(prefix="bettorsense-e2e-"))
    print(
        f"e2e: scenarios {chosen}, profile {args.profile}, token lifetime {timing.lifetime:g} s, "
        f"window {timing.window:g} s, beat every {timing.refresh_every:g} s; work dir {workdir}",
        flush=True,
    )
    results: list[ScenarioResult] = []
    contexts: list[Context] = []
    suite_started = time.time()
    try:
        with contextlib.ExitStack() as stack:
            if args.profile in ("all", "services"):
                database_url = stack.enter_context(postgres_database(args.pg_url))
                profile = Profile("services", database_url, redis=True)
                _migrate(profile)
                ctx = Context(profile, workdir, timing)
                contexts.append(ctx)
                for number in chosen:
                    if number != 7:
                        _run(number, profile, ctx, results)
            if args.profile in ("all", "embedded"):
                (workdir / "broker").mkdir()
                profile = Profile(
                    "embedded", f"sqlite:///{workdir / 'e2e.sqlite3'}", redis=False, broker_dir=workdir / "broker"
                )
                _migrate(profile)
                ctx = Context(profile, workdir, timing)
                contexts.append(ctx)
                for number in chosen:
                    if number != 7 and (number in EMBEDDED or args.profile == "embedded"):
                        _run(number, profile, ctx, results)
            if 7 in chosen:
                # Last: a short run of its own, then the search over every deployment of this run.
                ctx = contexts[0]
                ctx.peers = contexts
                ctx.table_text = render(results)
                _run(7, ctx.profile, ctx, results)
    finally:
        table = render(results)
        print("\n" + table)
        print(
            f"e2e: {sum(r.passed for r in results)}/{len(results)} scenario runs passed "
            f"in {time.time() - suite_started:.0f} s",
            flush=True,
        )
        summary = failure_summary(results)
        if summary:
            print(summary, flush=True)
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(table)
        if args.keep:
            print(f"e2e: logs and bodies kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
