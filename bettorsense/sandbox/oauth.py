"""``POST /oauth/token``: Auth0's client-credentials grant, failures included.

Status codes and ``error``/``error_description`` follow what Auth0 answers (collected from Auth0
issue threads and SDK reports; Auth0 publishes no complete table):

* content type neither form nor JSON, unreadable body: 400 ``invalid_request``;
* no ``grant_type``: 400 ``invalid_request`` "Missing required parameter: grant_type";
* another OAuth grant (``password``, ...): 403 ``unauthorized_client``
  "Grant type 'password' not allowed for the client.";
* an unknown grant: 403 ``unsupported_grant_type`` "Unsupported grant type: X";
* no ``client_id``: 401 ``invalid_client`` "Missing client_id";
* unknown client, wrong or missing secret: 401 ``access_denied`` "Unauthorized";
* no ``audience``: 403 ``access_denied`` "Non-global clients are not allowed access to APIv1";
* unknown audience: 403 ``access_denied`` "Service not found: <audience>";
* audience not granted to the client: 403 ``access_denied``
  'Client is not authorized to access "<audience>". You need to create a "client-grant" ...';
* reuse rule broken (``enforce_reuse``): 429 ``too_many_requests`` with ``Retry-After``.

Client credentials may also come in an HTTP Basic ``Authorization`` header, as Auth0 allows.
The client secret is never echoed or logged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import hmac
import json
import logging
import math
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qs, unquote

from bettorsense.sandbox.faults import HTML_PAGE, Fault, bend_token_body
from bettorsense.sandbox.responses import HTML, JSON, Response, dumps, json_response
from bettorsense.sandbox.state import AUDIENCE_ENVIRONMENTS, ReuseViolation, SandboxState

logger = logging.getLogger(__name__)

GRANT_TYPE: Final = "client_credentials"
# Grants Auth0 knows but a machine-to-machine application is not allowed to use.
OTHER_GRANTS: Final = frozenset(
    {
        "authorization_code",
        "password",
        "refresh_token",
        "implicit",
        "http://auth0.com/oauth/grant-type/password-realm",
        "http://auth0.com/oauth/grant-type/passwordless/otp",
        "http://auth0.com/oauth/grant-type/mfa-otp",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    }
)
CLIENT_GRANTS_URL: Final = "https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants"
_NO_STORE: Final = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


class _Rejected(Exception):
    def __init__(
        self, status: int, error: str, description: str, reason: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.description = description
        self.reason = reason
        self.headers = headers or []


def oauth_error(status: int, error: str, description: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return json_response(status, {"error": error, "error_description": description}, [*_NO_STORE, *(headers or [])])


def _parse_body(content_type: str, body: bytes) -> dict[str, str]:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as err:
            raise _Rejected(400, "invalid_request", "The request body is not valid UTF-8.", "bad_body") from err
        return {name: values[0] for name, values in parsed.items() if values and values[0]}
    if media_type == "application/json":
        try:
            data = json.loads(body or b"{}")
        except ValueError as err:
            raise _Rejected(400, "invalid_request", "The request body is not valid JSON.", "bad_body") from err
        if not isinstance(data, dict):
            raise _Rejected(400, "invalid_request", "The request body must be a JSON object.", "bad_body")
        for name, value in data.items():
            if value is not None and not isinstance(value, str):
                raise _Rejected(400, "invalid_request", f"Invalid type for parameter: {name}", "bad_body")
        return {name: value for name, value in data.items() if value}
    shown = media_type or "none"
    raise _Rejected(
        400,
        "invalid_request",
        f"Unsupported content type: {shown}. Send application/x-www-form-urlencoded or application/json.",
        "bad_content_type",
    )


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as err:
        raise _Rejected(400, "invalid_request", "Malformed Basic authorization header.", "bad_body") from err
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id), unquote(secret)


def _claimed_client_id(params: dict[str, str], authorization: str | None) -> str:
    if params.get("client_id"):
        return params["client_id"]
    try:
        basic = _basic_credentials(authorization)
    except _Rejected:
        return ""
    return basic[0] if basic else ""


def _client_key(state: SandboxState, client_id: str) -> str:
    if not client_id:
        return "<missing>"
    return client_id if client_id in state.clients else "<unknown>"


def handle_token_request(
    state: SandboxState, method: str, content_type: str, authorization: str | None, body: bytes, issuer: str
) -> Response:
    if method != "POST":
        return oauth_error(405, "method_not_allowed", f"{method} is not allowed here; use POST.", [("Allow", "POST")])
    try:
        params: dict[str, str] | None = _parse_body(content_type, body)
        parse_error: _Rejected | None = None
    except _Rejected as err:
        params, parse_error = None, err
    client_key = _client_key(state, _claimed_client_id(params or {}, authorization))

    delay = drip = 0.0
    drip_head = False
    fault = state.take_fault(("token",), body=False, client_id=client_key)
    if fault is not None:
        if fault.kind == "slow":
            delay = fault.delay
        elif fault.kind in {"drip", "drip_head"}:
            drip = fault.delay
            drip_head = fault.kind == "drip_head"
        else:
            state.note_token_request(client_key, f"fault_{fault.kind}")
            logger.info("Sandbox token request answered by fault %s", fault.kind)
            return _fault_response(fault)

    try:
        if parse_error is not None:
            raise parse_error
        response = _grant(state, params or {}, authorization, issuer)
        outcome = "issued"
    except _Rejected as err:
        response = oauth_error(err.status, err.error, err.description, err.headers)
        outcome = err.reason
        logger.info("Sandbox token request from %s rejected: %s", client_key, err.reason)
    state.note_token_request(client_key, outcome)

    if response.status == 200:
        body_fault = state.take_fault(("token",), body=True, client_id=client_key)
        if body_fault is not None:
            response = _bend(response, body_fault)
    response.delay = delay
    response.drip = drip
    response.drip_head = drip_head
    return response


def _grant(state: SandboxState, params: dict[str, str], authorization: str | None, issuer: str) -> Response:
    grant_type = params.get("grant_type")
    if not grant_type:
        raise _Rejected(400, "invalid_request", "Missing required parameter: grant_type", "missing_grant_type")
    if grant_type != GRANT_TYPE:
        if grant_type in OTHER_GRANTS:
            description = f"Grant type '{grant_type}' not allowed for the client."
            raise _Rejected(403, "unauthorized_client", description, "unauthorized_client")
        raise _Rejected(
            403, "unsupported_grant_type", f"Unsupported grant type: {grant_type}", "unsupported_grant_type"
        )

    client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
    basic = _basic_credentials(authorization)
    if basic is not None:
        if secret or (client_id and client_id != basic[0]):
            raise _Rejected(
                400, "invalid_request", "Use only one client authentication method.", "multiple_client_auth"
            )
        client_id, secret = basic
    if not client_id:
        raise _Rejected(401, "invalid_client", "Missing client_id", "missing_client_id")
    client = state.clients.get(client_id)
    if client is None or not secret or not hmac.compare_digest(client.secret.encode(), secret.encode()):
        raise _Rejected(401, "access_denied", "Unauthorized", "bad_credentials")

    audience = params.get("audience")
    if not audience:
        raise _Rejected(403, "access_denied", "Non-global clients are not allowed access to APIv1", "missing_audience")
    if audience not in AUDIENCE_ENVIRONMENTS:
        raise _Rejected(403, "access_denied", f"Service not found: {audience}", "unknown_audience")
    if audience not in client.audiences:
        description = (
            f'Client is not authorized to access "{audience}". You need to create a "client-grant" '
            f"associated to this API. See: {CLIENT_GRANTS_URL}"
        )
        raise _Rejected(403, "access_denied", description, "audience_not_granted")

    try:
        token, record = state.issue_token(client, audience, issuer)
    except ReuseViolation as err:
        raise _reuse_rejection(err) from None
    payload = {"access_token": token, "expires_in": record.expires_in, "token_type": "Bearer"}
    return json_response(200, payload, list(_NO_STORE))


def _reuse_rejection(err: ReuseViolation) -> _Rejected:
    issued = datetime.fromtimestamp(err.current.issued_at, UTC).isoformat(timespec="seconds")
    wait = max(1, math.ceil(err.seconds_left - err.threshold))
    description = (
        f"A valid token (sha256 {err.current.fingerprint}) issued at {issued} for audience "
        f"{err.current.audience} still has {int(err.seconds_left)} s left. Reuse it: request a new token "
        f"only in the last {err.threshold:g} s of its lifetime (retry in {wait} s)."
    )
    return _Rejected(429, "too_many_requests", description, "reuse_violation", [("Retry-After", str(wait))])


def _fault_response(fault: Fault) -> Response:
    if fault.kind == "hang":
        return Response(0, hang=True)
    if fault.kind == "retry_after":
        retry_after = str(fault.retry_after if fault.value is None else fault.value)
        return oauth_error(429, "too_many_requests", "Global limit has been reached", [("Retry-After", retry_after)])
    if fault.kind == "redirect":
        return Response(fault.status, b"", HTML, [("Location", str(fault.value)), *_NO_STORE])
    if fault.kind == "gzip_bomb":
        size = GZIP_BOMB_BYTES if fault.value is None else int(fault.value)
        return Response(200, gzip_bomb(size), JSON, [("Content-Encoding", "gzip"), *_NO_STORE])
    if fault.kind == "json_bomb":
        depth = JSON_BOMB_DEPTH if fault.value is None else int(fault.value)
        return Response(200, b"[" * depth + b"]" * depth, JSON, list(_NO_STORE))
    error = "temporarily_unavailable" if fault.status == 503 else "server_error"
    return oauth_error(fault.status, error, f"Injected fault: HTTP {fault.status}")


GZIP_BOMB_BYTES: Final = 1_500_000
JSON_BOMB_DEPTH: Final = 5000
_BOMB_MEMBER_INFLATED: Final = 8 * 1024 * 1024


@functools.lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """About ``size`` bytes of gzip that inflate to ~1000 times as many zeros.

    A gzip body may hold several members, which decoders inflate one after the other: repeating
    one small member builds the bomb without ever holding what it inflates to.
    """
    member = gzip.compress(b"\0" * _BOMB_MEMBER_INFLATED, compresslevel=9, mtime=0)
    return member * max(1, size // len(member))


def _bend(response: Response, fault: Fault) -> Response:
    if fault.kind == "non_json":
        return Response(200, HTML_PAGE, HTML, response.headers)
    bent = bend_token_body(json.loads(response.body), fault)
    return Response(200, dumps(bent), response.content_type, response.headers)
