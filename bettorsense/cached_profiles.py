"""The profile cache's entries: a player's profile (the vendor's JSON) or a remembered 404.

Each is a sealed entry (:mod:`bettorsense.sealing`) bound to the player's key, so an entry copied
from another player, or forged, is never served. On read the profile is parsed as an API answer
is, and each deadline is capped: freshness at a day from now (scores are recomputed daily), a
remembered 404 at ``NOT_FOUND_TTL`` from now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from bettorsense import entries
from bettorsense.cache import BestEffortCache, shared_cache
from bettorsense.conf import Config
from bettorsense.exceptions import BadResponse
from bettorsense.profiles import RiskProfile, parse_profile
from bettorsense.sealing import seal

logger = logging.getLogger(__name__)

PROFILE_KIND: Final = "profile"
#: Scores are recomputed once a day: no entry is fresh for longer.
MAX_FRESH: Final = 86400.0
_MAX_ERROR_NAME: Final = 64

#: Without the cache every call asks the API (or the store) and caches nothing.
profile_cache = BestEffortCache("Profile cache", logger, alias=lambda config: config.profile_cache_alias)


@dataclass(frozen=True)
class CachedProfile:
    profile: RiskProfile  # parsed from the vendor's JSON, as an API answer is
    fresh_until: float


@dataclass(frozen=True)
class CachedMiss:
    error: str  # the ProfileUnavailable subclass's name
    until: float


def _parse(data: dict[str, Any]) -> CachedProfile | CachedMiss:
    if "missing" in data:
        return CachedMiss(
            error=entries.text(data, "missing", max_length=_MAX_ERROR_NAME),
            until=entries.number(data, "until", low=0.0),
        )
    try:
        profile = parse_profile(entries.mapping(data, "profile"))
    except BadResponse:
        raise entries.Malformed("profile") from None
    return CachedProfile(profile=profile, fresh_until=entries.number(data, "fresh_until", low=0.0))


def read(config: Config, key: str, now: float) -> CachedProfile | CachedMiss | None:
    """The entry under ``key`` with its deadline capped; None if absent, unreadable or malformed."""
    raw = profile_cache.get(config, key)
    found = entries.read_sealed(config, shared_cache(config), raw, key=key, kind=PROFILE_KIND, parse=_parse)
    if isinstance(found, CachedMiss):
        return CachedMiss(found.error, min(found.until, now + config.not_found_ttl))
    if isinstance(found, CachedProfile):
        return CachedProfile(found.profile, min(found.fresh_until, now + MAX_FRESH))
    return None


def _write(config: Config, key: str, payload: dict[str, Any], ttl: float) -> bool:
    """Seal and write the entry; whether it was written (the process memo keeps only what was)."""
    try:
        sealed = seal(config, payload, key=key, kind=PROFILE_KIND)
    except ValueError:  # too large, or not plain JSON: not cached
        logger.warning("Profile cache: an entry could not be sealed; not cached")
        return False
    return profile_cache.set(config, key, sealed, ttl)


def write_profile(config: Config, key: str, body: dict[str, Any], fresh_until: float) -> bool:
    # The vendor's own JSON is cached, not our objects, so an upgrade never meets old pickles.
    return _write(config, key, {"profile": body, "fresh_until": fresh_until}, config.stale_ttl)


def write_miss(config: Config, key: str, error: str, now: float) -> bool:
    return _write(config, key, {"missing": error, "until": now + config.not_found_ttl}, config.not_found_ttl)
