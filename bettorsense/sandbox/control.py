"""The ``/_sandbox/`` control API, for driving a sandbox that runs in another process.

=======  ==========================  ==================================================================
Method   Path                        Body / answer
=======  ==========================  ==================================================================
GET      /_sandbox/health            ``{"status": "ok"}``
GET      /_sandbox/stats             :meth:`SandboxState.stats`
POST     /_sandbox/reset             clears counters, recorded requests, tokens and faults
GET      /_sandbox/faults            the active faults
POST     /_sandbox/faults            a :class:`Fault` as JSON -> 201 with the fault
DELETE   /_sandbox/faults            ``{"cleared": n}``
POST     /_sandbox/revoke            ``{"client_id": "..."}`` (optional) -> ``{"revoked": n}``
GET      /_sandbox/config            the configuration
POST     /_sandbox/config            settings to change (see ``SandboxState.set_config``)
POST     /_sandbox/advance-day       ``{"days": 1}`` (optional) -> ``{"day": "YYYY-MM-DD", ...}``
POST     /_sandbox/players           ``{"count": 1}`` (optional) -> 201 ``{"added": ["player_5001", ...]}``
GET      /_sandbox/requests?limit=N  the last N recorded API requests (default 100)
POST     /_sandbox/clients           ``{"client_id", "client_secret", "audiences", "bookmakers"}`` -> 201
=======  ==========================  ==================================================================

Errors are ``{"error": "..."}`` with 400 (bad input), 404 (unknown path) or 405 (wrong method).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from bettorsense.sandbox.faults import Fault
from bettorsense.sandbox.responses import Response, json_response
from bettorsense.sandbox.state import AUDIENCE_ENVIRONMENTS, DEFAULT_BOOKMAKERS, SandboxState

PREFIX = "/_sandbox/"


class _BadInput(ValueError):
    pass


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as err:
        raise _BadInput("The body is not valid JSON.") from err
    if not isinstance(data, dict):
        raise _BadInput("The body must be a JSON object.")
    return data


def _health(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    return json_response(200, {"status": "ok", "day": state.current_day.isoformat()})


def _stats(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    return json_response(200, state.stats())


def _reset(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    state.reset()
    return json_response(200, {"reset": True})


def _list_faults(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    return json_response(200, state.stats()["faults"])


def _add_fault(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    fault = state.add_fault(Fault.from_dict(data))
    return json_response(201, fault.to_dict())


def _clear_faults(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    return json_response(200, {"cleared": state.clear_faults()})


def _revoke(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    client_id = data.get("client_id")
    if client_id is not None and not isinstance(client_id, str):
        raise _BadInput("client_id must be a string.")
    return json_response(200, {"revoked": state.revoke_tokens(client_id)})


def _get_config(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    return json_response(200, state.stats()["config"])


def _set_config(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    return json_response(200, state.set_config(**data))


def _advance_day(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    days = data.get("days", 1)
    if not isinstance(days, int) or isinstance(days, bool):
        raise _BadInput("days must be an integer.")
    day = state.advance_day(days)
    return json_response(200, {"day": day.isoformat(), "days_advanced": state.days_advanced})


def _add_players(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    count = data.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100_000:
        raise _BadInput("count must be an integer from 1 to 100000.")
    return json_response(201, {"added": state.add_players(count)})


def _requests(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    raw = query.get("limit", ["100"])[0]
    if not raw.isdigit():
        raise _BadInput("limit must be a whole number.")
    with state.lock:
        recent = list(state.requests)[-int(raw) :] if int(raw) else []
    return json_response(200, [dataclasses.asdict(r) for r in recent])


def _add_client(state: SandboxState, data: dict[str, Any], query: dict[str, list[str]]) -> Response:
    client_id, secret = data.get("client_id"), data.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(secret, str):
        raise _BadInput("client_id and client_secret must be strings.")
    audiences = data.get("audiences", list(AUDIENCE_ENVIRONMENTS))
    bookmakers = data.get("bookmakers", [list(pair) for pair in DEFAULT_BOOKMAKERS])
    try:
        pairs = [(int(b), int(s)) for b, s in bookmakers]
    except (TypeError, ValueError) as err:
        raise _BadInput("bookmakers must be a list of [bookmakerId, subBookmakerId] pairs.") from err
    record = state.add_client(client_id, secret, audiences=list(audiences), bookmakers=pairs)
    payload = {
        "client_id": record.client_id,
        "audiences": sorted(record.audiences),
        "bookmakers": sorted(list(pair) for pair in record.bookmakers),
    }
    return json_response(201, payload)


_Handler = Callable[[SandboxState, dict[str, Any], dict[str, list[str]]], Response]
ROUTES: dict[str, dict[str, _Handler]] = {
    "health": {"GET": _health},
    "stats": {"GET": _stats},
    "reset": {"POST": _reset},
    "faults": {"GET": _list_faults, "POST": _add_fault, "DELETE": _clear_faults},
    "revoke": {"POST": _revoke},
    "config": {"GET": _get_config, "POST": _set_config},
    "advance-day": {"POST": _advance_day},
    "players": {"POST": _add_players},
    "requests": {"GET": _requests},
    "clients": {"POST": _add_client},
}


def handle_control_request(state: SandboxState, method: str, path: str, query_string: str, body: bytes) -> Response:
    methods = ROUTES.get(path[len(PREFIX) :].strip("/"))
    if methods is None:
        return json_response(404, {"error": f"Unknown control endpoint {path}."})
    handler = methods.get(method)
    if handler is None:
        allowed = ", ".join(sorted(methods))
        return json_response(405, {"error": f"Use {allowed} on {path}."}, [("Allow", allowed)])
    try:
        return handler(state, _json_object(body), parse_qs(query_string))
    except (ValueError, TypeError) as err:
        return json_response(400, {"error": str(err)})
