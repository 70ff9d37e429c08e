"""Checks on caller input, done before any request, and the exact encoding of path segments."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from bettorsense.exceptions import InvalidInput

INT32_MAX = 2_147_483_647
ACCOUNT_ID_MAX = 64
#: Unicode's Cc (C0, DEL, C1) and Cs (surrogates) categories, exactly: one regex search per id
#: instead of a category look-up per character.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: What ``quote(safe="")`` leaves as it is (RFC 3986's unreserved characters).
_UNRESERVED: Final = re.compile(r"[A-Za-z0-9_.~-]+")


def bookmaker_id(name: str, value: object) -> int:
    """An int32 in 0..2147483647 (the vendor's path parameter type)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer, not {type(value).__name__}.")
    if not 0 <= value <= INT32_MAX:
        raise InvalidInput(f"{name} must be between 0 and {INT32_MAX}.")
    return value


def account_id(value: object) -> str:
    """1 to 64 characters, no control characters, encodable as UTF-8."""
    if not isinstance(value, str):
        raise InvalidInput(f"account_id must be a string, not {type(value).__name__}.")
    if not 1 <= len(value) <= ACCOUNT_ID_MAX:
        raise InvalidInput(f"account_id must be 1 to {ACCOUNT_ID_MAX} characters long, not {len(value)}.")
    if _CONTROL.search(value):
        raise InvalidInput("account_id must not contain control characters.")
    return value


def path_segment(value: str) -> str:
    """Percent-encode one path segment so that nothing in it can change the route.

    ``/``, ``?``, ``#`` and ``%`` are encoded by ``quote(safe="")``; a segment made only of dots
    would be collapsed by URL normalisation (RFC 3986 §5.2.4), so its dots are encoded as well.
    """
    # Most segments (the route's words, numeric ids, most account ids) need no escape at all.
    encoded = value if _UNRESERVED.fullmatch(value) else quote(value, safe="")
    if encoded and not encoded.strip("."):
        encoded = "%2E" * len(encoded)
    return encoded
