"""Calls per second through get_player_risk_profile(fresh=True) against a plain requests.Session.

Both sides call the same single-profile endpoint of one sandbox, which runs in its own process so
that it does not share the interpreter lock with the caller. The plain side sends a fixed valid
token; ours goes through the whole service layer: validation, the shared token, the breaker, the
retry loop, parsing into dataclasses and writing the profile cache. Rounds alternate between the
two sides and the best round of each is kept. The goal is a ratio of at least 0.9.

    .venv/bin/python bench/service_rate.py                     # embedded defaults (SQLite, database cache)
    CACHE_URL=redis://127.0.0.1:6379/1 .venv/bin/python bench/service_rate.py
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    parser.add_argument("--calls", type=int, default=500, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
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
        return run(base, args.calls, args.rounds)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


def run(base: str, calls: int, rounds: int) -> int:
    import django
    import requests
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)
    call_command("createcachetable", verbosity=0)
    settings.BETTORSENSE = {
        **settings.BETTORSENSE,
        "ENVIRONMENT": "sandbox",
        "TOKEN_URL": f"{base}/oauth/token",
        "API_URL": f"{base}/ci/api/rg",
        "KEY_PREFIX": f"bench-{os.getpid()}",
    }
    from bettorsense.services import get_player_risk_profile
    from bettorsense.tokens.manager import get_access_token

    account = "player_1"
    url = f"{base}/ci/api/rg/v1/Operator/PlayerRiskProfile/bookmakers/123/sub-bookmakers/456/accountid/{account}"
    plain = requests.Session()
    headers = {"Authorization": f"Bearer {get_access_token()}", "Accept": "application/json"}

    def plain_round() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            response = plain.get(url, headers=headers, timeout=10)
            response.raise_for_status()
            response.json()
        return calls / (time.perf_counter() - started)

    # A leaner baseline: one prepared request re-sent, environment settings read once. It shows
    # what the service layer itself costs, beyond what requests.Session.get spends per call.
    prepared = plain.prepare_request(requests.Request("GET", url, headers=headers))
    environment = plain.merge_environment_settings(url, {}, None, None, None)

    def lean_round() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            response = plain.send(prepared, timeout=10, **environment)
            response.raise_for_status()
            response.json()
        return calls / (time.perf_counter() - started)

    def ours_round() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            get_player_risk_profile(account, fresh=True)
        return calls / (time.perf_counter() - started)

    plain_round(), lean_round(), ours_round()  # warm up connections, caches and the token
    plain_rates, lean_rates, ours_rates = [], [], []
    for _ in range(rounds):
        plain_rates.append(plain_round())
        lean_rates.append(lean_round())
        ours_rates.append(ours_round())
    best_plain, best_lean, best_ours = max(plain_rates), max(lean_rates), max(ours_rates)
    cache = settings.CACHES[settings.BETTORSENSE.get("CACHE_ALIAS", "default")]["BACKEND"].rsplit(".", 1)[-1]
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"service rate: best of {rounds} rounds x {calls} calls, cache {cache}, database {database}")
    print(f"  plain requests.Session, fixed token : {best_plain:8.1f} calls/s")
    print(f"  get_player_risk_profile(fresh=True) : {best_ours:8.1f} calls/s")
    print(f"  lean Session.send, prepared request : {best_lean:8.1f} calls/s")
    print(f"  ratio to plain Session              : {best_ours / best_plain:8.2f}  (goal >= 0.90)")
    print(f"  ratio to lean Session.send          : {best_ours / best_lean:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
