"""Command-line options shared by ``python -m bettorsense.sandbox`` and ``manage.py bettorsense_sandbox``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any, TextIO

from bettorsense.sandbox.server import SandboxServer
from bettorsense.sandbox.state import BATCH_ENVELOPES, DEFAULT_CLIENT_ID, SandboxState


def _client_spec(value: str) -> tuple[str, str]:
    client_id, sep, secret = value.partition(":")
    if not sep or not client_id or not secret:
        raise argparse.ArgumentTypeError("expected CLIENT_ID:SECRET")
    return client_id, secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1, loopback only).")
    parser.add_argument("--port", type=int, default=8765, help="Port to bind; 0 picks a free one (default 8765).")
    parser.add_argument("--token-lifetime", type=float, default=600.0, help="Token lifetime in seconds (default 600).")
    parser.add_argument(
        "--enforce-reuse",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Answer 429 to a token request while the client's current token has time left (default off).",
    )
    parser.add_argument(
        "--reuse-threshold",
        type=float,
        default=None,
        help="Seconds before expiry from which a new token may be requested (default min(60, 20%% of lifetime)).",
    )
    parser.add_argument("--players", type=int, default=5000, help="Players per bookmaker (default 5000).")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the generated profiles (default 1).")
    parser.add_argument("--page-size", type=int, default=1000, help="Profiles per batch page (default 1000).")
    parser.add_argument(
        "--batch-envelope", choices=BATCH_ENVELOPES, default="items", help="Shape of a batch page (default items)."
    )
    parser.add_argument(
        "--batch-date-param", default="changedSince", help="Name of the batch date filter (default changedSince)."
    )
    parser.add_argument(
        "--start-day", type=date.fromisoformat, default=None, help="First day, YYYY-MM-DD (default today)."
    )
    parser.add_argument(
        "--client",
        action="append",
        type=_client_spec,
        default=[],
        metavar="ID:SECRET",
        help="Register another client holding bookmaker 123 / sub-bookmaker 456 (repeatable).",
    )
    parser.add_argument(
        "--allow-remote-control",
        action="store_true",
        help="Let non-loopback clients use the /_sandbox/ control API.",
    )


def build_state(options: dict[str, Any]) -> SandboxState:
    state = SandboxState(
        token_lifetime=options["token_lifetime"],
        enforce_reuse=options["enforce_reuse"],
        players=options["players"],
        seed=options["seed"],
        reuse_threshold=options["reuse_threshold"],
        page_size=options["page_size"],
        batch_envelope=options["batch_envelope"],
        batch_date_param=options["batch_date_param"],
        start_day=options["start_day"],
    )
    for client_id, secret in options["client"]:
        state.add_client(client_id, secret)
    return state


def build_server(options: dict[str, Any]) -> SandboxServer:
    return SandboxServer(
        build_state(options),
        host=options["host"],
        port=options["port"],
        allow_remote_control=options["allow_remote_control"],
    )


def describe(server: SandboxServer) -> list[str]:
    """What a person starting the sandbox needs to know (no secrets, not even the demo one)."""
    config = server.state.stats()["config"]
    return [
        f"Bettor Sense sandbox listening on {server.url}",
        f"  token URL:       {server.token_url}",
        f"  integration API: {server.api_url('integration')}  (audience mts-insight-tech-non-prod)",
        f"  production API:  {server.api_url('production')}  (audience mts-insight-tech)",
        f"  demo client:     {DEFAULT_CLIENT_ID} (the demo settings' secret), bookmaker 123, sub-bookmaker 456",
        f"  token lifetime:  {config['expires_in']} s, reuse rule {'on' if config['enforce_reuse'] else 'off'}",
        f"  players:         {config['players']} (player_1 .. player_{config['players']}), day {config['day']}",
        f"  control API:     {server.url}/_sandbox/stats",
    ]


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bettorsense.sandbox", description="Local stand-in for Auth0 and the Bettor Sense API."
    )
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO", help="Logging level (default INFO).")
    options = vars(parser.parse_args(argv))
    logging.basicConfig(level=options["log_level"].upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        server = build_server(options).start()
    except OSError as err:
        print(f"Cannot start the sandbox on {options['host']}:{options['port']}: {err}", file=sys.stderr)
        return 1
    for line in describe(server):
        print(line, file=out, flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
