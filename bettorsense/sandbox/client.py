"""A small client of the ``/_sandbox/`` control API, for a sandbox running in another process."""

from __future__ import annotations

import http.client
import json
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from bettorsense.sandbox.faults import Fault


class SandboxControlError(RuntimeError):
    """The control API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class SandboxClient:
    """``SandboxClient("http://127.0.0.1:8765").add_fault(target="token", kind="status", status=503)``."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base_path = parts.path.rstrip("/")

    def _call(self, method: str, endpoint: str, payload: dict[str, Any] | None = None) -> Any:
        connection_class = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = connection_class(self._host, self._port, timeout=self.timeout)
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, f"{self._base_path}/_sandbox/{endpoint}", body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        data = json.loads(raw) if raw else None
        if response.status >= 400:
            message = data.get("error", raw.decode()) if isinstance(data, dict) else raw.decode()
            raise SandboxControlError(response.status, str(message))
        return data

    def _object(self, method: str, endpoint: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = self._call(method, endpoint, payload)
        if not isinstance(data, dict):
            raise SandboxControlError(200, f"expected a JSON object from {endpoint}, got {type(data).__name__}")
        return data

    def _list(self, method: str, endpoint: str) -> list[dict[str, Any]]:
        data = self._call(method, endpoint)
        if not isinstance(data, list):
            raise SandboxControlError(200, f"expected a JSON array from {endpoint}, got {type(data).__name__}")
        return data

    def health(self) -> dict[str, Any]:
        return self._object("GET", "health")

    def stats(self) -> dict[str, Any]:
        return self._object("GET", "stats")

    def reset(self) -> None:
        self._call("POST", "reset")

    def add_fault(self, fault: Fault | None = None, **fields: Any) -> dict[str, Any]:
        """Add a fault, given as a :class:`Fault` or as its fields; returns it as stored."""
        data = asdict(fault) if fault is not None else Fault(**fields).to_dict()
        data.pop("fired", None)
        return self._object("POST", "faults", data)

    def faults(self) -> list[dict[str, Any]]:
        return self._list("GET", "faults")

    def clear_faults(self) -> int:
        return int(self._object("DELETE", "faults")["cleared"])

    def revoke_tokens(self, client_id: str | None = None) -> int:
        payload = {"client_id": client_id} if client_id is not None else {}
        return int(self._object("POST", "revoke", payload)["revoked"])

    def config(self) -> dict[str, Any]:
        return self._object("GET", "config")

    def set_config(self, **settings: Any) -> dict[str, Any]:
        """E.g. ``set_config(token_lifetime=5, enforce_reuse=True)``; returns the new configuration."""
        return self._object("POST", "config", settings)

    def advance_day(self, days: int = 1) -> dict[str, Any]:
        return self._object("POST", "advance-day", {"days": days})

    def add_players(self, count: int = 1) -> list[str]:
        """Add ``count`` players scored today; returns their account ids."""
        added = self._object("POST", "players", {"count": count})["added"]
        return [str(account) for account in added]

    def requests(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._list("GET", f"requests?limit={int(limit)}")

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        audiences: list[str] | None = None,
        bookmakers: list[tuple[int, int]] | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"client_id": client_id, "client_secret": client_secret}
        if audiences is not None:
            payload["audiences"] = list(audiences)
        if bookmakers is not None:
            payload["bookmakers"] = [list(pair) for pair in bookmakers]
        return self._object("POST", "clients", payload)
