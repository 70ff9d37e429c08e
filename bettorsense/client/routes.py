"""The route template of an API call: its path with every variable part named, never filled in.

Metric labels and trace attributes carry the template (``.../accountid/{accountId}``), never the
URL: the URL holds the player's account id. A segment is kept as written only when it is one of
the API's own literal words; anything else becomes a placeholder, so an unknown path can only
lose detail, never leak a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

#: The literal path words of the endpoints we call (docs/vendor-api.md §4-§5).
LITERALS: Final = frozenset(
    {"v1", "Operator", "PlayerRiskProfile", "RiskProfiles", "bookmakers", "sub-bookmakers", "accountid"}
)
#: The placeholder that follows each literal which names a value.
PLACEHOLDERS: Final = {
    "bookmakers": "{bookmakerId}",
    "sub-bookmakers": "{subBookmakerId}",
    "accountid": "{accountId}",
}
UNKNOWN: Final = "{value}"


def route_template(segments: Sequence[str]) -> str:
    """``/v1/Operator/PlayerRiskProfile/bookmakers/{bookmakerId}/...`` for the segments of a call."""
    # Not memoised: a cache keyed by the segments would keep account ids in memory.
    parts: list[str] = []
    previous = ""
    for segment in segments:
        if previous in PLACEHOLDERS:
            parts.append(PLACEHOLDERS[previous])
        elif segment in LITERALS:
            parts.append(segment)
        else:
            parts.append(UNKNOWN)
        previous = segment
    return "/" + "/".join(parts)
