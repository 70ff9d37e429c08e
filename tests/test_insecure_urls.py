"""Plain-http URLs (system check E004) and credentials written into a configured URL (redacted wherever shown)."""

from __future__ import annotations

import contextlib
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from bettorsense import tokens
from bettorsense.checks import check_settings
from bettorsense.conf import get_config
from bettorsense.management.commands.bettorsense_status import Command
from bettorsense.redaction import fingerprint, redact, redact_for, safe_url

URL_USER = "url-user-0815"
URL_PASSWORD = "url-password-leak-canary"


def e004() -> list[str]:
    return [str(m.msg) + " " + str(m.hint) for m in check_settings() if m.id == "bettorsense.E004"]


@pytest.fixture
def integration(settings):
    def apply(**overrides: object) -> None:
        settings.BETTORSENSE = {"ENVIRONMENT": "integration", "CLIENT_ID": "id", "CLIENT_SECRET": "secret", **overrides}

    apply()
    return apply


def test_the_presets_pass(integration):
    assert e004() == []
    integration(ENVIRONMENT="production")
    assert e004() == []


@pytest.mark.parametrize("name", ["TOKEN_URL", "API_URL"])
def test_an_http_url_outside_the_sandbox_is_an_error_with_a_hint(integration, name):
    integration(**{name: "http://proxy.internal:8080/path"})
    (message,) = e004()
    assert name in message and "http://proxy.internal:8080/path" in message
    assert "ALLOW_INSECURE_URLS" in message


def test_both_urls_are_checked(integration):
    integration(TOKEN_URL="http://a.internal/oauth/token", API_URL="ftp://b.internal/api")
    assert len(e004()) == 2


def test_a_local_proxy_is_allowed_explicitly(integration):
    integration(TOKEN_URL="http://127.0.0.1:3128/oauth/token", ALLOW_INSECURE_URLS=True)
    assert e004() == []


def test_the_sandbox_environment_allows_http(settings):
    settings.BETTORSENSE = {"ENVIRONMENT": "sandbox", "CLIENT_ID": "id", "CLIENT_SECRET": "secret"}
    assert get_config().token_url.startswith("http://")
    assert e004() == []


def test_the_check_shows_no_url_credentials(integration):
    integration(TOKEN_URL=f"http://{URL_USER}:{URL_PASSWORD}@proxy.internal/oauth/token")
    (message,) = e004()
    assert URL_PASSWORD not in message and URL_USER not in message
    assert "http://proxy.internal/oauth/token" in message


# --- the redaction functions --------------------------------------------------------------------


def test_safe_url_drops_user_info_query_and_fragment():
    assert safe_url(f"https://{URL_USER}:{URL_PASSWORD}@h.example:8443/p?key=1#f") == "https://h.example:8443/p"
    assert safe_url("http://h:notaport/") == "(unparsable URL)"


@pytest.mark.parametrize(
    "text",
    [
        f"POST to https://{URL_USER}:{URL_PASSWORD}@auth.example/oauth/token failed",
        f"echo: Authorization: Bearer {URL_PASSWORD}",
        f"echo: authorization: bearer {URL_PASSWORD}==",
    ],
)
def test_redact_removes_url_credentials_and_bearer_credentials(text):
    redacted = redact(text)
    assert URL_PASSWORD not in redacted and "[redacted" in redacted


def test_prose_about_bearer_tokens_is_left_alone():
    assert redact("The API refused the bearer token twice.") == "The API refused the bearer token twice."


@pytest.mark.django_db(transaction=True)
def test_redact_for_removes_the_current_token_whatever_its_shape(configure, sandbox):
    value = tokens.get_token().value
    echoed = f"the gateway said: unknown credential {value[-40:]}... full: {value}"
    redacted = redact_for(get_config(), echoed)
    assert value not in redacted
    assert redact_for(get_config(), "form: client_secret=demo-client-secret") == (
        f"form: client_secret=[redacted {fingerprint('demo-client-secret')}]"
    )


# --- everywhere a URL is shown ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_url_credentials_appear_nowhere(configure, sandbox, django_user_model):
    token_url = sandbox.token_url.replace("http://", f"http://{URL_USER}:{URL_PASSWORD}@")
    api_url = sandbox.api_url("integration").replace("http://", f"http://{URL_USER}:{URL_PASSWORD}@")
    # Integration, so that E004 names both URLs in the checks of the JSON and the page.
    configure(ENVIRONMENT="integration", TOKEN_URL=token_url, API_URL=api_url, HEALTH_TOKEN="monitor-key-1")
    staff = django_user_model.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=("view_health", "run_probe")))
    admin = Client()
    admin.force_login(staff)
    admin.post("/admin/bettorsense/health/check/")
    out = StringIO()
    with contextlib.suppress(SystemExit):
        Command(stdout=out, stderr=out, no_color=True).run_from_argv(["manage.py", "bettorsense_status"])
    shown = {
        "the health JSON": Client()
        .get("/bettorsense/health/", HTTP_AUTHORIZATION="Bearer monitor-key-1")
        .content.decode(),
        "the admin page": admin.get("/admin/bettorsense/health/").content.decode(),
        "the status command": out.getvalue(),
        "the demo view": Client().get("/players/player_1/risk-profile/").content.decode(),
    }
    assert "bettorsense.E004" in shown["the health JSON"] and "bettorsense.E004" in shown["the admin page"]
    for where, text in shown.items():
        assert URL_PASSWORD not in text, where
        assert URL_USER not in text, where
