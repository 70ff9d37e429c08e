"""Argument types shared by the management commands."""

from __future__ import annotations

import argparse
from datetime import date, datetime

from bettorsense.profiles import parse_date_or_datetime


def since_argument(value: str) -> date | datetime:
    """``--since``: an ISO-8601 date, or an ISO-8601 date-time (UTC when it has no offset)."""
    try:
        return parse_date_or_datetime(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 date or date-time.") from None
