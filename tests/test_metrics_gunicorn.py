"""The metrics under gunicorn's multi-process model: counters of every worker add up in one scrape.

gunicorn runs the demo project with ``WORKERS`` sync workers and ``PROMETHEUS_MULTIPROC_DIR`` set.
Each round sends ``WORKERS`` requests at once, each for an account not asked for before (a cache
miss: one API call). The sandbox holds every API call of a round until all ``WORKERS`` have arrived,
and a sync worker serves one request at a time: a round completes only if every worker took exactly
one of its requests. Then each worker's own file must hold ``ROUNDS`` calls, and any worker's scrape
the sum, which is also what the sandbox counted.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from bettorsense.sandbox import SandboxServer, SandboxState
from bettorsense.sandbox import server as sandbox_server_module
from harness.fleet import child_env, database_url, sandbox_overrides, stop_process_group
from harness.ports import free_port

WORKERS = 3
ROUNDS = 4
KEY = "metrics-key-for-gunicorn-0123456789"
ROUTE = "/v1/Operator/PlayerRiskProfile/bookmakers/{bookmakerId}/sub-bookmakers/{subBookmakerId}/accountid/{accountId}"
STARTUP_TIMEOUT = 90.0
ROUND_TIMEOUT = 30.0


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer within {STARTUP_TIMEOUT} s:\n{log.read_text()[-3000:]}")


class HeldRound:
    """Wraps the sandbox's API handler: each call waits until ``parties`` calls are in."""

    def __init__(self, handler, parties: int) -> None:
        self.handler = handler
        self.barrier = threading.Barrier(parties, timeout=ROUND_TIMEOUT)

    def __call__(self, *args, **kwargs):
        self.barrier.wait()  # raises BrokenBarrierError if a worker served two of a round
        return self.handler(*args, **kwargs)


def api_calls_in(scrape: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "bettorsense_api_requests_total" and sample.labels.get("endpoint") == ROUTE
    )


def api_calls_by_process(directory: Path) -> dict[str, float]:
    """Each worker's own count of profile calls, read from its file (``counter_<pid>.db``)."""
    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        total = 0.0
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            if '"bettorsense_api_requests_total"' in key and ROUTE in key:
                total += value
        counts[path.stem.removeprefix("counter_")] = total
    return counts


@pytest.mark.fleet
@pytest.mark.django_db(transaction=True)
def test_counters_of_every_gunicorn_worker_add_up_in_one_scrape(tmp_path: Path, monkeypatch) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    log = tmp_path / "gunicorn.log"
    held = HeldRound(sandbox_server_module.handle_api_request, WORKERS)
    monkeypatch.setattr(sandbox_server_module, "handle_api_request", held)
    with SandboxServer(SandboxState(players=1000)) as sandbox:
        env = child_env(
            sandbox_overrides(sandbox, HEALTH_TOKEN=KEY, READ_TIMEOUT=ROUND_TIMEOUT + 5),
            database=database_url(connection.settings_dict),
            PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "project.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--timeout",
            str(int(ROUND_TIMEOUT * 2)),
            "--no-control-socket",
        ]
        with log.open("wb") as output:
            proc = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(f"{base}/bettorsense/health/", proc, log)

            def ask(account: str) -> int:
                # A connection of its own per request, so no keep-alive ties two requests to a worker.
                response = requests.get(
                    f"{base}/players/{account}/risk-profile/",
                    headers={"Connection": "close"},
                    timeout=ROUND_TIMEOUT * 2,
                )
                return response.status_code

            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                for round_number in range(ROUNDS):
                    accounts = [f"player_{round_number * WORKERS + i + 1}" for i in range(WORKERS)]
                    assert list(pool.map(ask, accounts)) == [200] * WORKERS, log.read_text()[-3000:]
                    held.barrier.reset()

            scrapes = [
                requests.get(f"{base}/bettorsense/metrics/", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
                for _ in range(WORKERS * 2)
            ]
            by_process = api_calls_by_process(multiproc)
            sandbox_calls = sum(1 for r in sandbox.state.requests if r.route == "profile")
        finally:
            stop_process_group(proc)

    assert all(response.status_code == 200 for response in scrapes)
    totals = {api_calls_in(response.text) for response in scrapes}
    assert totals == {float(WORKERS * ROUNDS)}, totals
    assert sandbox_calls == WORKERS * ROUNDS
    busy = {pid: count for pid, count in by_process.items() if count}
    assert len(busy) == WORKERS and set(busy.values()) == {float(ROUNDS)}, by_process
    assert "player_1" not in scrapes[0].text
