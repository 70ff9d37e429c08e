"""No secret in the health page, the health JSON or the status command, in any state.

Canary credentials (a client of the sandbox's own) make a leak easy to find: the client secret, the
monitor's key, the full client id and every token value in play are searched for, and so is
anything shaped like a JWT.
"""

from __future__ import annotations

import contextlib
import re
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from bettorsense.management.commands.bettorsense_status import Command
from tests.support import health_states

pytestmark = pytest.mark.django_db(transaction=True)

CANARY_ID = "leak-canary-client-7d1f"
CANARY_SECRET = "S3cret-leak-canary-value-do-not-print"
CANARY_KEY = "monitor-key-leak-canary-0042"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.")


@pytest.fixture
def leaky(configure, sandbox):
    sandbox.state.add_client(CANARY_ID, CANARY_SECRET)
    canary = {"CLIENT_ID": CANARY_ID, "CLIENT_SECRET": CANARY_SECRET, "HEALTH_TOKEN": CANARY_KEY}

    def apply(**overrides):
        return configure(**{**canary, **overrides})

    apply()
    return apply


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=("view_health", "run_probe")))
    client.force_login(user)
    return client


def command_output(*args: str) -> str:
    out, err = StringIO(), StringIO()
    with contextlib.suppress(SystemExit):  # exit 1 when down
        Command(stdout=out, stderr=err, no_color=True).run_from_argv(["manage.py", "bettorsense_status", *args])
    return out.getvalue() + err.getvalue()


def assert_no_secret(text: str, token_values: set[str], where: str) -> None:
    # The client id is not a secret: the page, the JSON and the logs may name it in full.
    for secret in (CANARY_SECRET, CANARY_KEY, *token_values):
        assert secret not in text, f"a secret is in {where}"
    assert not JWT.search(text), f"something shaped like a token is in {where}"


@pytest.mark.parametrize("state", sorted(health_states.STATES))
def test_no_secret_anywhere_in_any_state(staff_client, leaky, sandbox, settings, caplog, state):
    expected = health_states.STATES[state](leaky, sandbox, settings)
    caplog.set_level("DEBUG", logger="bettorsense")
    page = staff_client.get("/admin/bettorsense/health/")
    assert page.status_code == 200
    monitor = Client()  # no session: the key alone, or nothing
    full = monitor.get("/bettorsense/health/", HTTP_AUTHORIZATION=f"Bearer {CANARY_KEY}")
    anonymous = monitor.get("/bettorsense/health/")
    assert anonymous.json() == {"status": expected}
    if state != "settings-invalid":
        assert full.json()["status"] == expected and "reasons" in full.json()
    status_text = command_output()
    # Then the live probe (which may change the state: a token fetched, the breaker closed).
    staff_client.post("/admin/bettorsense/health/check/")
    probed = staff_client.get("/admin/bettorsense/health/").content.decode()
    assert 'id="bs-probe-result"' in probed
    outputs = {
        "the page": page.content.decode(),
        "the full JSON": full.content.decode(),
        "the anonymous JSON": anonymous.content.decode(),
        "the status command": status_text,
        "the page after Check now": probed,
        "the status command's JSON with a probe": command_output("--json", "--probe"),
    }
    token_values = health_states.cached_token_values()
    if state not in {"credentials-missing", "settings-invalid", "token-endpoint-down", "token-endpoint-closed"}:
        assert token_values, "the state should have put a token in play"
    for where, text in outputs.items():
        assert_no_secret(text, token_values, where)
    assert_no_secret(caplog.text, token_values, "the logs")
