"""One process of scenario 12: a sync run with a counting receiver, or a look at what the runs left.

``python -m e2e.sync_runner run --name A --dir D [--parties 2] [--hold]`` waits until ``parties``
runners are ready in ``D`` (so they start at once), runs one sync, and writes one JSON line per
``risk_band_changed`` it received to ``D/signals-A.jsonl``. With ``--hold`` it stops after its first
committed page, writes ``D/A.holding`` and waits for ``D/release``. It prints its outcome as JSON.

``drop-lock`` deletes the sync's cache lock (what an eviction or a TTL lapse does); ``report`` prints
the runs and the change rows each run inserted that the signal rule covers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

WAIT = 120.0


def _wait_for(what: str, ready: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def _run(args: argparse.Namespace) -> int:
    from bettorsense.exceptions import SyncAlreadyRunning
    from bettorsense.models import SyncRun
    from bettorsense.signals import risk_band_changed
    from bettorsense.sync import run_sync

    workdir = Path(args.dir)
    signals = (workdir / f"signals-{args.name}.jsonl").open("a", buffering=1)

    def receiver(sender: Any, profile: Any, previous_band: Any, new_band: Any, **kwargs: Any) -> None:
        line = {
            "runner": args.name,
            "account": profile.account_id,
            "previous": None if previous_band is None else int(previous_band),
            "new": int(new_band),
            "change": kwargs["change"].pk,
        }
        signals.write(json.dumps(line) + "\n")

    risk_band_changed.connect(receiver, weak=False)
    held = False

    def progress(run: SyncRun) -> None:
        nonlocal held
        if args.hold and not held:
            held = True
            (workdir / f"{args.name}.holding").write_text(str(run.pk))
            _wait_for("the release", (workdir / "release").exists)

    (workdir / f"{args.name}.ready").write_text(str(os.getpid()))
    _wait_for(f"{args.parties} runners", lambda: len(list(workdir.glob("*.ready"))) >= args.parties)
    started = time.monotonic()
    try:
        run = run_sync(progress=progress)
    except SyncAlreadyRunning as err:
        outcome: dict[str, Any] = {"outcome": "refused", "message": str(err)}
    else:
        outcome = {"outcome": str(run.status), "run": run.pk, "signals_sent": run.signals_sent}
    outcome.update(name=args.name, seconds=round(time.monotonic() - started, 3))
    print(json.dumps(outcome), flush=True)
    return 0


def _drop_lock(args: argparse.Namespace) -> int:
    from bettorsense.conf import get_config
    from bettorsense.services import bookmaker_ids
    from bettorsense.sync import _SyncLock

    config = get_config()
    lock = _SyncLock(config, *bookmaker_ids(config, None, None)).lock
    held = lock.cache.get(lock.key) is not None
    lock.cache.delete(lock.key)
    print(json.dumps({"dropped": held}), flush=True)
    return 0


def _report(args: argparse.Namespace) -> int:
    from bettorsense.conf import get_config
    from bettorsense.models import RiskProfileChange, SyncRun
    from bettorsense.services import bookmaker_ids

    # The scenario's own pair only: the suite's database is shared, and another deployment's beat
    # may have run its daily sync (SYNC_AT_UTC, 04:30) there meanwhile.
    bookmaker, sub_bookmaker = bookmaker_ids(get_config(), None, None)
    pair = {"bookmaker_id": bookmaker, "sub_bookmaker_id": sub_bookmaker}
    runs = list(
        SyncRun.objects.filter(**pair).order_by("id").values("id", "status", "initial_load", "signals_sent", "error")
    )
    due: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["initial_load"]:
            continue  # SIGNAL_INITIAL_LOAD is off in the scenario
        changes = RiskProfileChange.objects.filter(sync_run_id=run["id"]).select_related("profile")
        due[str(run["id"])] = [
            {"account": c.profile.account_id, "previous": c.previous_band, "new": c.band, "change": c.pk}
            for c in changes
            if c.is_band_move
        ]
    pending = RiskProfileChange.objects.filter(
        signal_pending=True, profile__bookmaker_id=bookmaker, profile__sub_bookmaker_id=sub_bookmaker
    ).count()
    print(json.dumps({"runs": runs, "due": due, "pending": pending}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.sync_runner")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--name", required=True)
    run.add_argument("--dir", required=True)
    run.add_argument("--parties", type=int, default=1)
    run.add_argument("--hold", action="store_true")
    sub.add_parser("drop-lock")
    sub.add_parser("report")
    args = parser.parse_args(argv)
    import django

    django.setup()
    return {"run": _run, "drop-lock": _drop_lock, "report": _report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
