"""Helpers shared by the tests of the sandbox (this module holds no tests)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import quote

import requests

from bettorsense.sandbox import SandboxServer, SandboxState

NONPROD = "mts-insight-tech-non-prod"
PROD = "mts-insight-tech"
CLIENT_ID = "demo-client"
CLIENT_SECRET = "demo-client-secret"
JULY_1 = 1_751_328_000.0  # 2025-07-01T00:00:00Z


class FakeClock:
    """An injectable clock: tests move time instead of sleeping."""

    def __init__(self, now: float = JULY_1 + 3600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fresh_state(server: SandboxServer, **kwargs: Any) -> SandboxState:
    """Give a (module-scoped) server a new state, so tests share the port but nothing else."""
    server.state = SandboxState(**kwargs)
    return server.state


def token_form(audience: str | None = NONPROD, **overrides: Any) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "audience": audience,
        **overrides,
    }
    return {key: value for key, value in form.items() if value is not None}


def request_token(server: SandboxServer, audience: str | None = NONPROD, **overrides: Any) -> requests.Response:
    return requests.post(server.token_url, data=token_form(audience, **overrides), timeout=5)


def fetch_token(server: SandboxServer, audience: str = NONPROD, **overrides: Any) -> str:
    response = request_token(server, audience, **overrides)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def encode_segment(text: str) -> str:
    """Percent-encode one path segment completely, dots included (urllib3 would resolve ``..``)."""
    return quote(text, safe="").replace(".", "%2E")


def profile_url(
    server: SandboxServer,
    account: str,
    environment: str = "integration",
    bookmaker: int | str = 123,
    sub_bookmaker: int | str = 456,
    *,
    encoded: bool = False,
) -> str:
    segment = account if encoded else encode_segment(account)
    return (
        f"{server.api_url(environment)}/v1/Operator/PlayerRiskProfile/bookmakers/{bookmaker}"
        f"/sub-bookmakers/{sub_bookmaker}/accountid/{segment}"
    )


def batch_url(
    server: SandboxServer, environment: str = "integration", bookmaker: int | str = 123, sub_bookmaker: int | str = 456
) -> str:
    base = server.api_url(environment)
    return f"{base}/v1/Operator/RiskProfiles/bookmakers/{bookmaker}/sub-bookmakers/{sub_bookmaker}"


def get(url: str, token: str | None = None, **kwargs: Any) -> requests.Response:
    headers = bearer(token) if token else {}
    return requests.get(url, headers=headers, timeout=kwargs.pop("timeout", 10), **kwargs)


def all_pages(server: SandboxServer, token: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Walk the batch from page 1 until a page comes back short; return every item."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        response = get(batch_url(server), token, params={**(params or {}), "page": str(page)})
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        if len(body["items"]) < body["pageSize"]:
            return items
        page += 1


def sandbox_settings(server: SandboxServer, **overrides: Any) -> dict[str, Any]:
    """A BETTORSENSE dict aimed at the sandbox, with a key prefix of its own for isolation."""
    return {
        "ENVIRONMENT": "sandbox",
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "BOOKMAKER_ID": 123,
        "SUB_BOOKMAKER_ID": 456,
        "TOKEN_URL": server.token_url,
        "API_URL": server.api_url("integration"),
        "KEY_PREFIX": f"bstest-{uuid.uuid4().hex[:10]}",
        "CONNECT_TIMEOUT": 1.0,
        "READ_TIMEOUT": 2.0,
        **overrides,
    }


def token_requests(server: SandboxServer) -> int:
    """Token requests the sandbox has heard, from every client, issued or refused."""
    return sum(client["total"] for client in server.state.stats()["token_requests"].values())
