"""The factor (category) scores as stored in JSON columns: bounded on the way in, checked on the way out.

The vendor sends a list of ``{key, name, score}``; the store keeps it on the profile and on each
recorded change. Neither side trusts the other: what is written is capped in count and size, and
what is read back (a row written by another version, or edited by hand) is dropped item by item when
it is not a well-formed factor, rather than failing the page that shows it.
"""

from __future__ import annotations

import math
from typing import Any, Final

from bettorsense.profiles import CategoryScore

MAX_FACTORS: Final = 32
MAX_NAME_LENGTH: Final = 100
MAX_KEY: Final = 1_000_000
# Far beyond any factor score seen; a bound so a hostile value cannot skew a chart or an export.
MAX_ABS_SCORE: Final = 1_000.0


def _is_factor(key: Any, name: Any, score: Any) -> bool:
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key <= MAX_KEY:
        return False
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return False
    return abs(score) <= MAX_ABS_SCORE and isinstance(name, str)


def _factor(key: Any, name: Any, score: Any) -> CategoryScore | None:
    if not _is_factor(key, name, score):
        return None
    return CategoryScore(key=key, name=name[:MAX_NAME_LENGTH], score=float(score))


def to_json(scores: tuple[CategoryScore, ...] | list[CategoryScore]) -> list[dict[str, Any]]:
    """The JSON kept in the store: at most MAX_FACTORS well-formed factors, names cut to MAX_NAME_LENGTH."""
    # The sync calls this for every profile of every page: dicts built directly, no CategoryScore
    # in between (a frozen dataclass's construction cost most of the time).
    kept: list[dict[str, Any]] = []
    for factor in scores:
        key, name, score = factor.key, factor.name, factor.score
        if _is_factor(key, name, score):
            kept.append({"key": key, "name": name[:MAX_NAME_LENGTH], "score": float(score)})
            if len(kept) == MAX_FACTORS:
                break
    return kept


def from_json(value: Any) -> tuple[CategoryScore, ...]:
    """The factors of a stored JSON value; anything malformed is left out."""
    if not isinstance(value, list):
        return ()
    kept = (_factor(item.get("key"), item.get("name"), item.get("score")) for item in value if isinstance(item, dict))
    return tuple(c for c in kept if c is not None)[:MAX_FACTORS]
