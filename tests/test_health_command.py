"""``manage.py bettorsense_status`` and ``manage.py bettorsense_demo_user``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError

from bettorsense.conf import get_config
from bettorsense.management.commands.bettorsense_status import Command
from bettorsense.redaction import fingerprint
from bettorsense.sandbox import Fault
from tests.support import health_states

# run_from_argv closes the database connections when it ends, as manage.py does.
pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent


def run_status(*args: str) -> tuple[int, str, str]:
    """Run the command as ``manage.py`` does (``run_from_argv``), in this process: exit code, stdout, stderr."""
    out, err = StringIO(), StringIO()
    try:
        Command(stdout=out, stderr=err, no_color=True).run_from_argv(["manage.py", "bettorsense_status", *args])
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("state", sorted(health_states.STATES))
def test_exit_code_and_json_in_every_state(configure, sandbox, settings, state):
    expected = health_states.STATES[state](configure, sandbox, settings)
    code, out, err = run_status("--json")
    body = json.loads(out)
    assert body["status"] == expected
    assert code == (1 if expected == "down" else 0)
    if expected == "down":
        assert "Bettor Sense is down" in err


def test_text_output_when_healthy(configure, sandbox, settings):
    health_states.healthy(configure, sandbox, settings)
    code, out, _ = run_status()
    assert code == 0
    assert out.splitlines()[0] == "Bettor Sense: OK"
    assert "Token:         sha256:" in out
    assert "Breaker:       closed" in out
    assert "Last API call: ok (HTTP 200)" in out
    assert "Renewals:      1 in the last hour, 1 in 24 h" in out
    assert "STALE" not in out


def test_text_output_names_the_reasons(configure, sandbox, settings):
    health_states.beat_stale(configure, sandbox, settings)
    code, out, _ = run_status()
    assert code == 0
    assert out.splitlines()[0] == "Bettor Sense: DEGRADED"
    assert "[degraded] Celery beat last ran" in out
    assert "STALE" in out


def test_down_raises_command_error_for_call_command(configure, sandbox, settings):
    health_states.breaker_open(configure, sandbox, settings)
    out = StringIO()
    with pytest.raises(CommandError, match="breaker-open") as caught:
        call_command("bettorsense_status", stdout=out)
    assert caught.value.returncode == 1
    assert "[down] The circuit breaker is open" in out.getvalue()


def test_probe_option_runs_the_live_check(configure, sandbox, settings):
    health_states.healthy(configure, sandbox, settings)
    code, out, _ = run_status("--probe")
    assert code == 0
    assert "Live check:    passed" in out
    assert "The API answered 200" in out
    code, out, _ = run_status("--probe", "--json")
    assert json.loads(out)["probe"]["ok"] is True


def test_probe_failure_exits_non_zero(configure, sandbox, settings):
    health_states.healthy(configure, sandbox, settings)
    configure(MAX_RETRIES=0, BREAKER_THRESHOLD=100)

    sandbox.state.add_fault(Fault(target="api", kind="status", status=500))
    code, out, err = run_status("--probe")
    assert code == 1
    assert "Live check:    FAILED" in out and "The live check failed" in err


def test_a_real_process_exits_1_when_down(tmp_path):
    """No credentials: down, whatever else. Run as cron or a container probe would."""
    env = {
        **os.environ,
        "BETTORSENSE_CLIENT_ID": "",
        "BETTORSENSE_CLIENT_SECRET": "",
        "CACHE_URL": "locmemcache://",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "bettorsense_status", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    body = json.loads(result.stdout)
    assert body["status"] == "down"
    assert "credentials-missing" in [reason["code"] for reason in body["reasons"]]


# --- the demo's staff user ----------------------------------------------------------------------


def password_in(output: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in output.splitlines() if line.strip().startswith("password:"))


def test_demo_user_can_open_the_page_and_each_run_resets_the_password(client, configure):
    first = StringIO()
    call_command("bettorsense_demo_user", stdout=first)
    password = password_in(first.getvalue())
    user = authenticate(username="bettorsense-demo", password=password)
    assert user is not None and user.is_staff and not user.is_superuser
    assert user.has_perm("bettorsense.view_health")
    assert client.login(username="bettorsense-demo", password=password)
    assert client.get("/admin/bettorsense/health/").status_code == 200

    second = StringIO()
    call_command("bettorsense_demo_user", stdout=second)
    new_password = password_in(second.getvalue())
    assert new_password != password
    assert authenticate(username="bettorsense-demo", password=password) is None
    assert authenticate(username="bettorsense-demo", password=new_password) is not None
    assert "Reset the password" in second.getvalue()
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.filter(username="bettorsense-demo").count() == 1


def test_a_failed_sync_command_shows_as_degraded(configure, sandbox, settings):
    """The issue's case: right after bettorsense_sync failed with exit 1, status said OK."""
    health_states.healthy(configure, sandbox, settings)
    sandbox.state.add_fault(Fault(target="batch", kind="status", status=403))
    with pytest.raises(CommandError) as caught:
        call_command("bettorsense_sync", "--full", stdout=StringIO(), stderr=StringIO())
    assert caught.value.returncode == 1
    sandbox.state.clear_faults()
    code, out, _ = run_status()
    assert code == 0
    assert out.splitlines()[0] == "Bettor Sense: DEGRADED"
    assert "[degraded] The last sync of the local store failed:" in out
    sync_line = next(line for line in out.splitlines() if line.startswith("Sync:"))
    assert "never succeeded; in the beat schedule; the last run FAILED:" in sync_line and "HTTP 403" in sync_line


def test_text_output_names_the_client_in_full_and_a_resolved_error(configure, sandbox, settings):
    health_states.error_resolved(configure, sandbox, settings)
    code, out, _ = run_status()
    assert code == 0
    config = get_config()
    assert f"Client:        {config.client_id}  secret: {fingerprint(config.client_secret)}" in out
    assert config.client_secret not in out
    error_line = next(line for line in out.splitlines() if line.startswith("Last error:"))
    assert "ago)  (resolved: a renewal succeeded since)" in error_line
    assert "Beat:          last ran" in out and ": nothing to do: the token was not due for renewal" in out
    assert "Beat schedule: renewal every 10 s; stale after 30 s" in out


def test_invalid_settings_are_the_only_reason_given(configure, sandbox, settings):
    configure(ENVIRONMENT="prod")
    code, out, err = run_status()
    assert code == 1 and "config-invalid" in err
    assert "[down] The settings are invalid: BETTORSENSE['ENVIRONMENT'] is 'prod'" in out
    assert "unreachable" not in out and "cache" not in out.lower()
