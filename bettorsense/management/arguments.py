"""Argument types shared by the management commands."""

from __future__ import annotations

import argparse
from datetime import date, datetime

from django.core.management.base import CommandError

from bettorsense.conf import DEFAULT_CLIENT, Config, get_config
from bettorsense.exceptions import BettorSenseConfigurationError
from bettorsense.profiles import parse_date_or_datetime


def since_argument(value: str) -> date | datetime:
    """``--since``: an ISO-8601 date, or an ISO-8601 date-time (UTC when it has no offset)."""
    try:
        return parse_date_or_datetime(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 date or date-time.") from None


def add_client_argument(parser: argparse.ArgumentParser) -> None:
    """``--client NAME``: the credential set a command works with (default: ``default``)."""
    parser.add_argument(
        "--client",
        default=DEFAULT_CLIENT,
        help="The credential set (a key of BETTORSENSE['CLIENTS']); default: default.",
    )


def client_config(name: str) -> Config:
    """The named credential set's Config; a CommandError naming the configured sets otherwise."""
    try:
        return get_config(name)
    except BettorSenseConfigurationError as err:
        raise CommandError(str(err)) from None
