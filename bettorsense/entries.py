"""Reading the app's sealed cache entries: open, check each field's type and range, or discard.

Each kind of entry has a small parser, next to the code that writes it, built from the field
readers below; a parser raises :class:`Malformed` when a field is missing, of the wrong type or out
of range. A malformed entry is treated as absent, removed, and logged at most every
``WARN_EVERY`` seconds per kind and process. An entry of another format version (another version of
the app, during a rolling upgrade) is absent to this version and left alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.cache import BaseCache

from bettorsense.cache import CacheUnavailable, RateLimitedWarning, guard_cache
from bettorsense.sealing import Verdict, open_sealed

if TYPE_CHECKING:
    from bettorsense.conf import Config

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The largest counter value read (a failure or request counter); more is malformed.
MAX_COUNT = 1_000_000_000

_warnings: dict[str, RateLimitedWarning] = {}


class Malformed(Exception):
    """A field of an opened entry is missing, of the wrong type, or out of range."""


def number(data: dict[str, Any], name: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(name)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        raise Malformed(name) from None
    if not finite or not low <= value <= high:
        raise Malformed(name)
    return float(value)


def whole(data: dict[str, Any], name: str, *, low: int = 0, high: int = MAX_COUNT) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Malformed(name)
    return value


def text(data: dict[str, Any], name: str, *, max_length: int, required: bool = True) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > max_length or (required and not value):
        raise Malformed(name)
    return value


def optional_text(data: dict[str, Any], name: str, *, max_length: int) -> str | None:
    return None if data.get(name) is None else text(data, name, max_length=max_length, required=False)


def flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise Malformed(name)
    return value


def mapping(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise Malformed(name)
    return value


def _warn(kind: str) -> RateLimitedWarning:
    warning = _warnings.get(kind)
    if warning is None:
        warning = _warnings.setdefault(kind, RateLimitedWarning(logger))
    return warning


def discard(cache: BaseCache, key: str, kind: str, *, why: str = "malformed") -> None:
    """Remove a malformed entry (best effort) and say so, rate-limited per kind."""
    try:
        with guard_cache():
            cache.delete(key)
    except CacheUnavailable:
        pass
    _warn(kind)("Cache entry of kind %r was %s; removed and treated as absent", kind, why)


def read_sealed(
    config: Config, cache: BaseCache, raw: object, *, key: str, kind: str, parse: Callable[[dict[str, Any]], T]
) -> T | None:
    """The entry ``raw`` read from ``key``, parsed; None if absent, of another version, or malformed."""
    opened = open_sealed(config, raw, key=key, kind=kind)
    if opened.verdict is Verdict.OK and opened.data is not None:
        try:
            return parse(opened.data)
        except Malformed:
            pass
    elif opened.verdict is not Verdict.MALFORMED:
        return None
    discard(cache, key, kind)
    return None


def read_count(cache: BaseCache, raw: object, *, key: str, kind: str) -> int | None:
    """A counter kept as a plain integer (``cache.incr`` needs one); None if absent or malformed."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_COUNT:
        discard(cache, key, kind)
        return None
    return raw


def reset_warnings() -> None:
    """Forget which kinds were warned about (tests)."""
    _warnings.clear()
