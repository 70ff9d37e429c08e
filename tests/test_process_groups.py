"""Stopping a process group waits for the program a wrapper runs, not only for the wrapper.

``faketime`` dies on SIGTERM at once while the program under it is still shutting down. e2e
scenario 11 stopped its beat that way: the beat was killed before it removed its pidfile, its pid
lived on as an unreaped orphan for a moment, and the next beat, started at once on the same
pidfile, exited with 73 ("already running"). Here the wrapped program takes a second to shut down
cleanly; :func:`harness.fleet.stop_process_group` must let it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.fleet import stop_process_group

REQUIRED = os.environ.get("CI") == "true" or os.environ.get("BETTORSENSE_REQUIRE_SERVICES") == "1"

PROGRAM = """
import os, signal, sys, time
pidfile, marker = sys.argv[1], sys.argv[2]

def shut_down(*_):
    time.sleep(1.0)
    os.unlink(pidfile)
    with open(marker, "w") as out:
        out.write("clean")
    sys.exit(0)

signal.signal(signal.SIGTERM, shut_down)
with open(pidfile + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
time.sleep(120)
"""

# A wrapper that, like faketime, runs the program as its child and dies on SIGTERM at once.
WRAPPER = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(120)"


def start_wrapped(wrapper: tuple[str, ...], tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    pidfile = tmp_path / "program.pid"
    proc = subprocess.Popen(
        [*wrapper, sys.executable, "-c", PROGRAM, str(pidfile), str(tmp_path / "marker")],
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not pidfile.exists():
        assert proc.poll() is None, f"the wrapper exited with {proc.returncode}"
        assert time.monotonic() < deadline, "the wrapped program never wrote its pidfile"
        time.sleep(0.05)
    return proc, int(pidfile.read_text())


def assert_stopped_cleanly(proc: subprocess.Popen[bytes], program_pid: int, tmp_path: Path) -> None:
    stop_process_group(proc, grace=10.0)
    assert (tmp_path / "marker").read_text() == "clean"
    assert not (tmp_path / "program.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(program_pid, 0)


def test_a_wrapper_that_dies_first_does_not_cut_the_programs_shutdown_short(tmp_path: Path):
    proc, program_pid = start_wrapped((sys.executable, "-c", WRAPPER), tmp_path)

    assert_stopped_cleanly(proc, program_pid, tmp_path)
    assert proc.returncode == -15  # the wrapper itself died of the SIGTERM, as faketime does


def test_a_program_under_faketime_shuts_down_cleanly(tmp_path: Path):
    faketime = shutil.which("faketime")
    if faketime is None:
        if REQUIRED:
            pytest.fail("faketime is missing (required in CI: .ci/run installs faketime)")
        pytest.skip("faketime is missing (apt-get install faketime)")
    proc, program_pid = start_wrapped((faketime, "-f", "+45s"), tmp_path)

    assert_stopped_cleanly(proc, program_pid, tmp_path)
