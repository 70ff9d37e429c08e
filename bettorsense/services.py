"""The service calls: typed answers about players' risk, or typed errors.

    from bettorsense import get_player_risk_profile, iter_risk_profiles

    profile = get_player_risk_profile("player_1")
    profile.band            # RiskBand.LOW
    for profile in iter_risk_profiles(changed_since=yesterday):
        ...

Caching follows the vendor's advice (docs/vendor-api.md §8): scores are recomputed once a day, by about
04:00 UTC, so a profile is cached until the next ``RECOMPUTE_AT_UTC`` boundary. The same entry is
kept for ``STALE_TTL`` as the fallback served, marked ``source="stale"``, when the API is down.
"""

from __future__ import annotations

import hashlib
import logging
import time
from array import array
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from bettorsense.cache import BestEffortCache, cache_key
from bettorsense.client import api as client
from bettorsense.client.validation import account_id as valid_account_id
from bettorsense.client.validation import bookmaker_id as valid_bookmaker_id
from bettorsense.conf import Config, get_config
from bettorsense.exceptions import (
    BadResponse,
    BettorSenseConfigurationError,
    InvalidInput,
    PlayerNotFound,
    ProfileInactive,
    ProfileNotCreated,
    ProfileUnavailable,
    RateLimited,
    ServiceUnavailable,
)
from bettorsense.profiles import ProfileSource, RiskProfile, parse_profile

logger = logging.getLogger(__name__)

_NOT_FOUND_ERRORS: dict[str, type[ProfileUnavailable]] = {
    cls.__name__: cls for cls in (PlayerNotFound, ProfileNotCreated, ProfileInactive)
}
# Where the envelope of the batch endpoint may keep its list (the vendor does not publish it).
_ITEM_KEYS = (
    "items",
    "results",
    "data",
    "profiles",
    "riskProfiles",
    "playerRiskProfiles",
    "content",
    "records",
    "value",
)
_TOTAL_PAGE_KEYS = ("totalPages", "pageCount", "total_pages", "pages")


def bookmaker_ids(config: Config, bookmaker_id: int | None, sub_bookmaker_id: int | None) -> tuple[int, int]:
    """The given ids, or the configured ones, validated as int32."""
    bookmaker = config.bookmaker_id if bookmaker_id is None else bookmaker_id
    sub_bookmaker = config.sub_bookmaker_id if sub_bookmaker_id is None else sub_bookmaker_id
    if bookmaker is None or sub_bookmaker is None:
        raise BettorSenseConfigurationError(
            "No bookmaker ids: pass bookmaker_id and sub_bookmaker_id, or set BETTORSENSE['BOOKMAKER_ID'] "
            "and ['SUB_BOOKMAKER_ID']."
        )
    return valid_bookmaker_id("bookmaker_id", bookmaker), valid_bookmaker_id("sub_bookmaker_id", sub_bookmaker)


def next_recompute(config: Config, now: datetime) -> datetime:
    """The first daily recompute boundary strictly after ``now``."""
    boundary = datetime.combine(now.date(), config.recompute_at_utc, tzinfo=UTC)
    return boundary if boundary > now else boundary + timedelta(days=1)


def _profile_key(config: Config, bookmaker: int, sub_bookmaker: int, account: str) -> str:
    digest = hashlib.sha256(account.encode()).hexdigest()[:32]
    return cache_key(config, f"profile:{bookmaker}:{sub_bookmaker}:{digest}")


#: Without the cache every call asks the API (or the store) and caches nothing.
profile_cache = BestEffortCache("Profile cache", logger)


def get_player_risk_profile(
    account_id: str,
    *,
    bookmaker_id: int | None = None,
    sub_bookmaker_id: int | None = None,
    fresh: bool = False,
) -> RiskProfile:
    """The risk profile of one player: from the cache until the next daily recompute, else the API.

    ``fresh=True`` asks the API and leaves the cache alone: no read, no write (the daily batch or
    the next ordinary call refreshes it). Raises a :class:`~bettorsense.exceptions.BettorSenseError`
    subclass on every failure; when the API is unavailable and a copy is held, that copy is returned
    with ``source="stale"`` instead, fresh or not.
    """
    config = get_config()
    account = valid_account_id(account_id)
    bookmaker, sub_bookmaker = bookmaker_ids(config, bookmaker_id, sub_bookmaker_id)
    key = _profile_key(config, bookmaker, sub_bookmaker, account)
    use_cache = config.profile_cache and not fresh
    cached = profile_cache.get(config, key) if use_cache else None
    if isinstance(cached, dict):
        if "missing" in cached and cached.get("until", 0) > time.time():
            error = _NOT_FOUND_ERRORS.get(str(cached["missing"]), PlayerNotFound)
            raise error(f"{error.__name__} (cached answer).", status_code=404)
        if "profile" in cached and cached.get("fresh_until", 0) > time.time():
            return _cached_profile(cached, ProfileSource.CACHE)
    if use_cache and config.serve_from_store:
        stored = _from_store(config, bookmaker, sub_bookmaker, account)
        if stored is not None:
            _cache_until_recompute(config, key, stored.to_json())
            return stored
    segments = (
        "v1",
        "Operator",
        "PlayerRiskProfile",
        "bookmakers",
        str(bookmaker),
        "sub-bookmakers",
        str(sub_bookmaker),
        "accountid",
        account,
    )
    try:
        body = client.get_json(config, segments)
        profile = parse_profile(body)
    except ProfileUnavailable as err:
        if use_cache:
            marker = {"missing": type(err).__name__, "until": time.time() + config.not_found_ttl}
            profile_cache.set(config, key, marker, config.not_found_ttl)
        raise
    except (ServiceUnavailable, RateLimited) as err:
        if fresh and config.profile_cache:
            cached = profile_cache.get(config, key)
        if isinstance(cached, dict) and "profile" in cached:
            logger.warning("Serving a stale profile: %s", type(err).__name__)
            return _cached_profile(cached, ProfileSource.STALE)
        raise
    if profile.account_id != account:
        raise BadResponse("The API answered with the profile of another player.")
    if use_cache:
        _cache_until_recompute(config, key, body)
    return profile


def _cache_until_recompute(config: Config, key: str, body: dict[str, Any]) -> None:
    # The vendor's own JSON is cached, not our objects, so an upgrade never meets old pickles.
    fresh_until = next_recompute(config, datetime.now(UTC)).timestamp()
    profile_cache.set(config, key, {"profile": body, "fresh_until": fresh_until}, config.stale_ttl)


def _from_store(config: Config, bookmaker: int, sub_bookmaker: int, account: str) -> RiskProfile | None:
    """The local store's copy, if a sync has succeeded since the last daily recompute."""
    from bettorsense.models import PlayerRiskProfile as StoredProfile
    from bettorsense.models import SyncRun

    last_recompute = next_recompute(config, datetime.now(UTC)) - timedelta(days=1)
    scope = {"bookmaker_id": bookmaker, "sub_bookmaker_id": sub_bookmaker}
    if not SyncRun.objects.filter(**scope, status=SyncRun.Status.SUCCEEDED, started_at__gte=last_recompute).exists():
        return None
    row = StoredProfile.objects.filter(**scope, account_id=account).first()
    return row.to_profile(ProfileSource.STORE) if row is not None else None


def _cached_profile(cached: dict[str, Any], source: ProfileSource) -> RiskProfile:
    return parse_profile(cached["profile"]).with_source(source)


def _date_param(config: Config, changed_since: date | datetime | None) -> str | None:
    if changed_since is None:
        return None
    if isinstance(changed_since, datetime):
        moment = changed_since if changed_since.tzinfo else changed_since.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    elif isinstance(changed_since, date):
        moment = datetime.combine(changed_since, datetime.min.time(), tzinfo=UTC)
    else:
        raise InvalidInput("changed_since must be a date or a datetime.")
    if config.batch_date_format == "date":
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _page_items(body: Any) -> tuple[list[Any], int | None]:
    """The list of a batch page and its total page count, if the envelope has one."""
    if isinstance(body, list):
        return body, None
    if isinstance(body, dict):
        for key in _ITEM_KEYS:
            if isinstance(body.get(key), list):
                total = next((body[k] for k in _TOTAL_PAGE_KEYS if isinstance(body.get(k), int)), None)
                return body[key], total
    raise BadResponse("A batch page is neither a JSON array nor an object holding one.")


def iter_risk_profile_pages(
    *,
    changed_since: date | datetime | None = None,
    bookmaker_id: int | None = None,
    sub_bookmaker_id: int | None = None,
    start_page: int = 1,
) -> Iterator[tuple[int, list[RiskProfile]]]:
    """The batch endpoint page by page, as ``(page number, profiles)``, from ``start_page``.

    Stops on an empty page, on a page shorter than ``BATCH_PAGE_SIZE``, or at the total page count
    when the envelope gives one. Only one page is held at a time. A :class:`BadResponse` ends a walk
    whose answers cannot be believed: a page longer than ``BATCH_PAGE_SIZE``, a page whose players
    were all on earlier pages of this walk, or more than ``BATCH_MAX_PAGES`` pages.
    """
    config = get_config()
    bookmaker, sub_bookmaker = bookmaker_ids(config, bookmaker_id, sub_bookmaker_id)
    if isinstance(start_page, bool) or not isinstance(start_page, int) or start_page < 1:
        raise InvalidInput("start_page must be an integer of at least 1.")
    segments = ("v1", "Operator", "RiskProfiles", "bookmakers", str(bookmaker), "sub-bookmakers", str(sub_bookmaker))
    since = _date_param(config, changed_since)
    page = start_page
    seen = SeenIds()
    while True:
        if page - start_page >= config.batch_max_pages:
            raise BadResponse(
                f"The batch has not ended after BATCH_MAX_PAGES ({config.batch_max_pages}) pages; "
                "the API may ignore the page parameter."
            )
        body = client.get_json(config, segments, {"page": page, config.batch_date_param: since})
        items, total_pages = _page_items(body)
        if not items:
            return
        if len(items) > config.batch_page_size:
            raise BadResponse(
                f"Batch page {page} holds {len(items)} profiles, more than BATCH_PAGE_SIZE ({config.batch_page_size})."
            )
        profiles = [parse_profile(item) for item in items]
        new = sum([seen.add(profile.account_id) for profile in profiles])
        if not new:
            raise BadResponse(
                f"Batch page {page} repeats players of earlier pages; the API may ignore the page parameter."
            )
        yield page, profiles
        if len(items) < config.batch_page_size or (total_pages is not None and page >= total_pages):
            return
        page += 1


class SeenIds:
    """The account ids met so far in one walk, about 16 bytes each (tens of millions fit in memory).

    An open-addressing table of 64-bit hashes in an ``array``: a Python ``set`` of strings would cost
    about 100 bytes per id. Two ids with the same hash would be taken for one, which at 10^7 ids
    happens in about one walk in a million; the cost is one page wrongly refused as a repeat only if
    every id on it collides, so in practice never.
    """

    _EMPTY: Final = 0

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * 1024))
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, account_id: str) -> bool:
        """Remember ``account_id``; False if it was already there."""
        digest = hashlib.blake2b(account_id.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little") | 1  # never _EMPTY
        if self._insert(self._slots, value):
            self._count += 1
            if self._count * 2 > len(self._slots):
                self._grow()
            return True
        return False

    @staticmethod
    def _insert(slots: array[int], value: int) -> bool:
        mask = len(slots) - 1
        index = value & mask
        while True:
            current = slots[index]
            if current == SeenIds._EMPTY:
                slots[index] = value
                return True
            if current == value:
                return False
            index = (index + 1) & mask

    def _grow(self) -> None:
        slots = array("Q", bytes(16 * len(self._slots)))
        for value in self._slots:
            if value != SeenIds._EMPTY:
                self._insert(slots, value)
        self._slots = slots


def iter_risk_profiles(
    *,
    changed_since: date | datetime | None = None,
    bookmaker_id: int | None = None,
    sub_bookmaker_id: int | None = None,
) -> Iterator[RiskProfile]:
    """Every profile of the batch endpoint, from page 1, streamed: never more than one page in memory."""
    for _, profiles in iter_risk_profile_pages(
        changed_since=changed_since, bookmaker_id=bookmaker_id, sub_bookmaker_id=sub_bookmaker_id
    ):
        yield from profiles


__all__ = [
    "get_player_risk_profile",
    "iter_risk_profile_pages",
    "iter_risk_profiles",
]
