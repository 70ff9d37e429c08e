"""Run the demo on embedded defaults: the sandbox, a Celery worker, Celery beat and Django.

Started by ``make demo``. Ctrl-C stops everything. ``WEB_PORT`` (default 8000) and ``SANDBOX_PORT``
(default 8765) move the two listening ports; a sandbox on another port is also where the app's
token and API URLs point.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
PYTHON = sys.executable
SANDBOX_PORT = os.environ.get("SANDBOX_PORT", "8765")
WEB_PORT = os.environ.get("WEB_PORT", "8000")


def busy_ports(ports: dict[str, str]) -> list[str]:
    """The variables whose port cannot be bound on 127.0.0.1 now (something else listens there)."""
    busy = []
    for variable, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", int(port)))
            except OSError:
                busy.append(variable)
    return busy


def point_the_app_at_the_sandbox(port: str) -> None:
    """The ``sandbox`` preset assumes port 8765; on another port the URLs follow it (unless set)."""
    if port != "8765":
        os.environ.setdefault("BETTORSENSE_TOKEN_URL", f"http://127.0.0.1:{port}/oauth/token")
        os.environ.setdefault("BETTORSENSE_API_URL", f"http://127.0.0.1:{port}/ci/api/rg")


def wait_for_port(port: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", int(port))) == 0:
                return True
        time.sleep(0.2)
    return False


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    log = (RUN / f"{name}.log").open("ab")
    print(f"  {name:<8} log: {RUN / f'{name}.log'}")
    return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C: the children are stopped in main's finally


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    busy = busy_ports({"WEB_PORT": WEB_PORT, "SANDBOX_PORT": SANDBOX_PORT})
    if busy:
        for variable in busy:
            port = WEB_PORT if variable == "WEB_PORT" else SANDBOX_PORT
            print(f"Port {port} is taken; free it or move the demo: {variable}=<port> make demo", file=sys.stderr)
        return 2
    point_the_app_at_the_sandbox(SANDBOX_PORT)
    RUN.mkdir(exist_ok=True)
    manage("migrate", "--noinput", "-v", "0")
    manage("createcachetable")
    manage("check")
    # A staff user who can open the health page; a new password each run, printed once.
    manage("bettorsense_demo_user")
    celery = [PYTHON, "-m", "celery", "-A", "project"]
    print("Starting:")
    processes = [
        start("sandbox", [PYTHON, "manage.py", "bettorsense_sandbox", "--port", SANDBOX_PORT, "--enforce-reuse"]),
        start("worker", [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"]),
        start("beat", [*celery, "beat", "--loglevel", "INFO", "--schedule", str(RUN / "celerybeat-schedule")]),
        start("web", [PYTHON, "manage.py", "runserver", f"127.0.0.1:{WEB_PORT}", "--noreload"]),
    ]
    # A first sync, so that the local store has profiles to look at in the admin.
    if wait_for_port(SANDBOX_PORT):
        with (RUN / "sync.log").open("ab") as log:
            synced = subprocess.run([PYTHON, "manage.py", "bettorsense_sync"], cwd=ROOT, stdout=log, stderr=log)
        print(f"  first sync: {'done' if synced.returncode == 0 else 'failed'} (log: {RUN / 'sync.log'})")
    print(
        f"\nBettor Sense demo running.\n"
        f"  Admin:     http://127.0.0.1:{WEB_PORT}/admin/\n"
        f"  Health:    http://127.0.0.1:{WEB_PORT}/admin/bettorsense/health/ (log in as the user above)\n"
        f"  Monitor:   http://127.0.0.1:{WEB_PORT}/bettorsense/health/\n"
        f"  Sandbox:   http://127.0.0.1:{SANDBOX_PORT}/_sandbox/stats\n"
        f"  Token:     {PYTHON} manage.py bettorsense_token\n"
        f"  Status:    {PYTHON} manage.py bettorsense_status\n"
        "Press Ctrl-C to stop."
    )
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(1)
        print("A demo process exited; see the logs in .run/.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # SIGTERM to each leader only: a Celery worker stops its own pool (a signal to the whole
        # group kills the pool first, and the worker logs each child as an ERROR).
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever a leader left behind


if __name__ == "__main__":
    sys.exit(main())
