"""The service calls: typed answers about players' risk, or typed errors.

    from bettorsense import get_player_risk_profile, iter_risk_profiles

    profile = get_player_risk_profile("player_1")
    profile.band            # RiskBand.LOW
    for profile in iter_risk_profiles(changed_since=yesterday):
        ...

Caching follows the vendor's advice (docs/vendor-api.md §8): scores are recomputed once a day, by about
04:00 UTC, so a profile is cached until the next ``RECOMPUTE_AT_UTC`` boundary. The same entry is
kept for ``STALE_TTL`` as the fallback served, marked ``source="stale"``, when the API is down. In
front of the cache, each process keeps what it read or wrote there for ``PROFILE_MEMO_TTL``
(:mod:`bettorsense.profile_memo`), so a hot read touches neither the cache nor the parser.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from bettorsense import cached_profiles
from bettorsense.cache import cache_key
from bettorsense.cached_profiles import CachedMiss, CachedProfile
from bettorsense.client import api
from bettorsense.client.validation import account_id as valid_account_id
from bettorsense.client.validation import bookmaker_id as valid_bookmaker_id
from bettorsense.conf import DEFAULT_CLIENT, Config, get_config
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
from bettorsense.profile_memo import MEMO
from bettorsense.profiles import ProfileSource, RiskProfile, parse_profile
from bettorsense.registry import PerConfig

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
        where = "BETTORSENSE" if config.is_default_client else f"BETTORSENSE['CLIENTS'][{config.client!r}]"
        raise BettorSenseConfigurationError(
            f"No bookmaker ids: pass bookmaker_id and sub_bookmaker_id, or set {where}['BOOKMAKER_ID'] "
            "and ['SUB_BOOKMAKER_ID']."
        )
    return valid_bookmaker_id("bookmaker_id", bookmaker), valid_bookmaker_id("sub_bookmaker_id", sub_bookmaker)


def next_recompute(config: Config, now: datetime) -> datetime:
    """The first daily recompute boundary strictly after ``now``."""
    boundary = datetime.combine(now.date(), config.recompute_at_utc, tzinfo=UTC)
    return boundary if boundary > now else boundary + timedelta(days=1)


def account_digest(account: str) -> str:
    """The part of a profile's cache key derived from the account id (erasure looks for it)."""
    return hashlib.sha256(account.encode()).hexdigest()[:32]


#: ``cache_key(config, "profile:")``, built once per Config: the hot read builds a key per call.
_PROFILE_KEY_PREFIXES: Final = PerConfig(lambda config: cache_key(config, "profile:"))


def profile_cache_key(config: Config, bookmaker: int, sub_bookmaker: int, account: str) -> str:
    """``cache_key(config, "profile:<bookmaker>:<sub>:<account digest>")``."""
    return f"{_PROFILE_KEY_PREFIXES.get(config)}{bookmaker}:{sub_bookmaker}:{account_digest(account)}"


def get_player_risk_profile(
    account_id: str,
    *,
    bookmaker_id: int | None = None,
    sub_bookmaker_id: int | None = None,
    fresh: bool = False,
    client: str = DEFAULT_CLIENT,
) -> RiskProfile:
    """The risk profile of one player: from the cache until the next daily recompute, else the API.

    ``fresh=True`` asks the API and leaves the cache alone: no read, no write (the daily batch or
    the next ordinary call refreshes it). Raises a :class:`~bettorsense.exceptions.BettorSenseError`
    subclass on every failure; when the API is unavailable and a copy is held, that copy is returned
    with ``source="stale"`` instead, fresh or not. ``client`` names the credential set (its
    credentials, bookmaker ids and cache entries); an unknown name raises
    :class:`~bettorsense.exceptions.UnknownClient`. Inside
    :func:`bettorsense.access_purpose` each profile returned is recorded in the access log.
    """
    profile = _fetch_profile(
        account_id, bookmaker_id=bookmaker_id, sub_bookmaker_id=sub_bookmaker_id, fresh=fresh, client=client
    )
    (_host_access or _load_host_access())(profile.account_id)
    return profile


#: ``privacy.access.record_host_access``, imported on first use (it needs the models loaded): an
#: import statement on every call cost a memo hit a quarter of its time.
_host_access: Callable[[str], None] | None = None


def _load_host_access() -> Callable[[str], None]:
    global _host_access
    from bettorsense.privacy.access import record_host_access

    _host_access = record_host_access
    return record_host_access


def _fetch_profile(
    account_id: str, *, bookmaker_id: int | None, sub_bookmaker_id: int | None, fresh: bool, client: str
) -> RiskProfile:
    config = get_config(client)
    account = valid_account_id(account_id)
    bookmaker, sub_bookmaker = bookmaker_ids(config, bookmaker_id, sub_bookmaker_id)
    use_cache = config.profile_cache and not fresh
    # Hashed only when the cache is used: a fresh call needs the key only for the stale fallback.
    key = profile_cache_key(config, bookmaker, sub_bookmaker, account) if use_cache else ""
    if use_cache and config.profile_memo_ttl:
        remembered = MEMO.get(key)
        if isinstance(remembered, RiskProfile):
            return remembered
        if remembered is not None:
            raise _cached_miss_error(remembered)
    now = time.time()
    cached = cached_profiles.read(config, key, now) if use_cache else None
    if isinstance(cached, CachedMiss) and cached.until > now:
        _remember(config, key, cached, cached.until)
        raise _cached_miss_error(cached)
    if isinstance(cached, CachedProfile) and cached.fresh_until > now:
        profile = _cached_profile(cached, ProfileSource.CACHE)
        _remember(config, key, profile, cached.fresh_until)
        return profile
    if use_cache and config.serve_from_store:
        stored = _from_store(config, bookmaker, sub_bookmaker, account)
        if stored is not None:
            body = stored.to_json()
            # Remembered as a read of the entry just written would give it: parsed from its JSON.
            _cache_until_recompute(config, key, body, parse_profile(body))
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
    )
    try:
        body = api.get_json(config, segments, account_id=account)
        profile = parse_profile(body)
    except ProfileUnavailable as err:
        if use_cache:
            now = time.time()
            miss = CachedMiss(type(err).__name__, now + config.not_found_ttl)
            if cached_profiles.write_miss(config, key, miss.error, now):
                _remember(config, key, miss, miss.until)
        raise
    except (ServiceUnavailable, RateLimited) as err:
        if fresh and config.profile_cache:
            key = profile_cache_key(config, bookmaker, sub_bookmaker, account)
            cached = cached_profiles.read(config, key, time.time())
        if isinstance(cached, CachedProfile):
            logger.warning("Serving a stale profile: %s", type(err).__name__)
            return _cached_profile(cached, ProfileSource.STALE)
        raise
    if profile.account_id != account:
        raise BadResponse("The API answered with the profile of another player.")
    if use_cache:
        _cache_until_recompute(config, key, body, profile)
    return profile


def _cache_until_recompute(config: Config, key: str, body: dict[str, Any], profile: RiskProfile) -> None:
    """Write ``body`` to the shared cache and, once written, ``profile`` (parsed from it) to the memo."""
    fresh_until = next_recompute(config, datetime.now(UTC)).timestamp()
    if cached_profiles.write_profile(config, key, body, fresh_until):
        _remember(config, key, profile.with_source(ProfileSource.CACHE), fresh_until)


def _remember(config: Config, key: str, answer: RiskProfile | CachedMiss, until: float) -> None:
    if config.profile_memo_ttl:
        MEMO.put(key, answer, until, ttl=config.profile_memo_ttl, size=config.profile_memo_size)


def _cached_miss_error(miss: CachedMiss) -> ProfileUnavailable:
    error = _NOT_FOUND_ERRORS.get(miss.error, PlayerNotFound)
    return error(f"{error.__name__} (cached answer).", status_code=404)


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


def _cached_profile(cached: CachedProfile, source: ProfileSource) -> RiskProfile:
    return cached.profile.with_source(source)


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
    client: str = DEFAULT_CLIENT,
) -> Iterator[tuple[int, list[RiskProfile]]]:
    """The batch endpoint page by page, as ``(page number, profiles)``, from ``start_page``.

    Stops on an empty page, on a page shorter than ``BATCH_PAGE_SIZE``, or at the total page count
    when the envelope gives one. Only one page is held at a time. A :class:`BadResponse` ends a walk
    whose answers cannot be believed: a page longer than ``BATCH_PAGE_SIZE``, a page with the same
    players as an earlier page of this walk, or more than ``BATCH_MAX_PAGES`` pages. ``client`` names
    the credential set.
    """
    config = get_config(client)
    bookmaker, sub_bookmaker = bookmaker_ids(config, bookmaker_id, sub_bookmaker_id)
    if isinstance(start_page, bool) or not isinstance(start_page, int) or start_page < 1:
        raise InvalidInput("start_page must be an integer of at least 1.")
    segments = ("v1", "Operator", "RiskProfiles", "bookmakers", str(bookmaker), "sub-bookmakers", str(sub_bookmaker))
    since = _date_param(config, changed_since)
    page = start_page
    seen = SeenPages()
    while True:
        if page - start_page >= config.batch_max_pages:
            raise BadResponse(
                f"The batch has not ended after BATCH_MAX_PAGES ({config.batch_max_pages}) pages; "
                "the API may ignore the page parameter."
            )
        body = api.get_json(config, segments, {"page": page, config.batch_date_param: since})
        items, total_pages = _page_items(body)
        if not items:
            return
        if len(items) > config.batch_page_size:
            raise BadResponse(
                f"Batch page {page} holds {len(items)} profiles, more than BATCH_PAGE_SIZE ({config.batch_page_size})."
            )
        profiles = [parse_profile(item) for item in items]
        if not seen.add(profile.account_id for profile in profiles):
            raise BadResponse(
                f"Batch page {page} repeats the players of an earlier page; the API may ignore the page parameter."
            )
        yield page, profiles
        if len(items) < config.batch_page_size or (total_pages is not None and page >= total_pages):
            return
        page += 1


class SeenPages:
    """The pages met so far in one walk, each by a digest of its set of players: memory by page count.

    A page with the same players as an earlier page of the walk means the API ignores the page
    parameter, or cycles. A digest per page, not every account id met, keeps a walk of a million
    players in 1,000-profile pages to a thousand 16-byte digests. Two different pages with one
    digest (a 128-bit BLAKE2b collision) do not happen in practice.
    """

    def __init__(self) -> None:
        self._digests: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, account_ids: Iterable[str]) -> bool:
        """Remember the page of these players; False if a page of the same players came before."""
        # Account ids hold no control characters (validation.account_id): "\n" cannot occur in one.
        players = "\n".join(sorted(set(account_ids))).encode()
        digest = hashlib.blake2b(players, digest_size=16).digest()
        if digest in self._digests:
            return False
        self._digests.add(digest)
        return True


def iter_risk_profiles(
    *,
    changed_since: date | datetime | None = None,
    bookmaker_id: int | None = None,
    sub_bookmaker_id: int | None = None,
    client: str = DEFAULT_CLIENT,
) -> Iterator[RiskProfile]:
    """Every profile of the batch endpoint, from page 1, streamed: never more than one page in memory."""
    for _, profiles in iter_risk_profile_pages(
        changed_since=changed_since, bookmaker_id=bookmaker_id, sub_bookmaker_id=sub_bookmaker_id, client=client
    ):
        yield from profiles


__all__ = [
    "get_player_risk_profile",
    "iter_risk_profile_pages",
    "iter_risk_profiles",
]
