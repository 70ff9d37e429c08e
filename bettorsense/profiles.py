"""Typed risk profiles, parsed tolerantly from the vendor's JSON (docs/vendor-api.md §6)."""

from __future__ import annotations

import enum
import math
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any, Final

from django.db import models

from bettorsense.exceptions import BadResponse


class RiskBand(models.IntegerChoices):
    """The vendor's bands by score. The integer codes follow the one example (54 -> 1), so they are
    inferred; the band is derived from ``riskScore``, and ``riskCategory`` is kept only as reported."""

    NO_RISK = 0, "No risk"
    LOW = 1, "Low risk"
    MEDIUM = 2, "Medium risk"
    HIGH = 3, "High risk"
    VERY_HIGH = 4, "Very high risk"

    @classmethod
    def for_score(cls, score: float) -> RiskBand:
        # The documented top band is [99, 100); a score of exactly 100 is put in it too.
        if score < 50:
            return cls.NO_RISK
        if score < 68:
            return cls.LOW
        if score < 95:
            return cls.MEDIUM
        if score < 99:
            return cls.HIGH
        return cls.VERY_HIGH


class ProfileSource(enum.StrEnum):
    """Where an answer came from; the values are those of the profile JSON's ``source``."""

    API = "api"
    CACHE = "cache"
    STORE = "store"  # the local copy kept by the daily sync
    STALE = "stale"  # the last good copy, served in an outage


@dataclass(frozen=True)
class CategoryScore:
    """One contributing factor: positive values push the risk up, negative ones pull it down."""

    key: int
    name: str
    score: float


@dataclass(frozen=True)
class RiskProfile:
    account_id: str
    last_updated: datetime | None
    risk_score: float
    risk_category: int | None
    percentile: float | None
    category_scores: tuple[CategoryScore, ...]
    band: RiskBand
    source: ProfileSource = field(default=ProfileSource.API, compare=False)

    @property
    def player_id(self) -> str:
        """Deprecated since 0.2: the player's id is ``account_id`` everywhere."""
        warnings.warn("RiskProfile.player_id is deprecated; use account_id.", DeprecationWarning, stacklevel=2)
        return self.account_id

    @property
    def stale(self) -> bool:
        return self.source == ProfileSource.STALE

    def with_source(self, source: ProfileSource) -> RiskProfile:
        """A copy from ``source``; the plain value (``"stale"``) is accepted, as before 0.2."""
        return replace(self, source=ProfileSource(source))

    def to_json(self) -> dict[str, Any]:
        """The vendor's field names, plus our derived band and the source."""
        return {
            "playerId": self.account_id,
            "lastUpdatedDateTime": self.last_updated.isoformat().replace("+00:00", "Z") if self.last_updated else None,
            "riskScore": self.risk_score,
            "riskCategory": self.risk_category,
            "percentile": self.percentile,
            "categoryScores": [{"key": c.key, "name": c.name, "score": c.score} for c in self.category_scores],
            "band": self.band.name.lower(),
            "bandLabel": self.band.label,
            "source": str(self.source),
            "stale": self.stale,
        }


def parse_datetime_utc(value: str) -> datetime:
    """ISO-8601 with ``Z`` or an offset, as an aware UTC datetime; naive values are taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads a "Z" itself: most values need nothing else
    except ValueError:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_date_or_datetime(value: str) -> date | datetime:
    """``2026-11-27`` as a date, anything longer as an aware UTC date-time; ValueError otherwise."""
    value = value.strip()
    return date.fromisoformat(value) if len(value) == 10 else parse_datetime_utc(value)


#: A tuple, not ``int | float``: the union would be built anew on every check (this runs per call).
_NUMBER: Final = (int, float)
_BY_SCORE: Final = attrgetter("score")


def _number(data: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, _NUMBER) or not math.isfinite(value):
        raise BadResponse(f"Profile field {name!r} is not a number.")
    return value


def parse_profile(data: Any) -> RiskProfile:
    """A profile from one ``PlayerRiskProfileDto``; field order and extra fields do not matter.

    ``playerId`` and ``riskScore`` are required; the other fields may be absent or null.
    """
    if not isinstance(data, dict):
        raise BadResponse("A risk profile is not a JSON object.")
    account_id = data.get("playerId")
    if not isinstance(account_id, str) or not account_id:
        raise BadResponse("Profile field 'playerId' is missing or not a string.")
    score = _number(data, "riskScore", required=True) or 0.0
    if not 0 <= score <= 100:
        raise BadResponse(f"Profile riskScore {score!r} is outside 1..100.")
    category = _number(data, "riskCategory", required=False)
    percentile = _number(data, "percentile", required=False)
    updated_raw = data.get("lastUpdatedDateTime")
    try:
        last_updated = parse_datetime_utc(updated_raw) if isinstance(updated_raw, str) else None
    except ValueError:
        raise BadResponse("Profile field 'lastUpdatedDateTime' is not an ISO-8601 date-time.") from None
    scores_raw = data.get("categoryScores") or []
    if not isinstance(scores_raw, list):
        raise BadResponse("Profile field 'categoryScores' is not a list.")
    scores = tuple(sorted([_category(item) for item in scores_raw], key=_BY_SCORE, reverse=True))
    # Positional, in the order of the fields: keywords cost a frozen dataclass a third more per call.
    return RiskProfile(
        account_id,
        last_updated,
        score,
        int(category) if category is not None else None,
        float(percentile) if percentile is not None else None,
        scores,
        RiskBand.for_score(score),
    )


def _category(item: Any) -> CategoryScore:
    # Exact types first: what the JSON decoder builds (a bool is neither int nor float here).
    if type(item) is dict:
        key, score = item.get("key"), item.get("score")
        if type(key) is int and (type(score) is float or type(score) is int):
            name = item.get("name")
            return CategoryScore(key, name if type(name) is str else str(name or ""), float(score))
    if not isinstance(item, dict):
        raise BadResponse("A category score is not a JSON object.")
    key, score = item.get("key"), item.get("score")
    if isinstance(key, bool) or not isinstance(key, int):
        raise BadResponse("Category score 'key' is not an integer.")
    if isinstance(score, bool) or not isinstance(score, _NUMBER):
        raise BadResponse("Category score 'score' is not a number.")
    return CategoryScore(key, str(item.get("name") or ""), float(score))  # positional: as above


def __getattr__(name: str) -> Any:
    if name == "PlayerRiskProfile":  # the dataclass's name before 0.2; the model keeps that name
        warnings.warn("bettorsense.profiles.PlayerRiskProfile is now RiskProfile.", DeprecationWarning, stacklevel=2)
        return RiskProfile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
