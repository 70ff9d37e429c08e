"""Finding and removing a player's cached profile in every cache alias the app uses.

The profile cache key is ``<prefix>:<credentials identity>:profile:<bookmaker>:<sub>:<digest>``,
the digest being derived from the account id (:func:`bettorsense.services.profile_cache_key`). The
keys of the bookmaker pairs we know are removed by name in every alias. Entries written under
another credentials identity or key prefix (credentials since rotated) or for another pair cannot
be named, so the Redis, database and local-memory backends are also scanned for any key that ends
in ``:profile:<b>:<s>:<digest>``; other backends get the named keys only, and the report says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connections, router

from bettorsense.atomic import raw_redis
from bettorsense.cache import CacheUnavailable, guard_cache
from bettorsense.conf import Config
from bettorsense.services import account_digest


def cache_aliases(config: Config) -> list[str]:
    """Every alias the configuration names (``CACHE_ALIAS`` and any other ``*_CACHE_ALIAS``)."""
    names = [getattr(config, f.name) for f in fields(config) if f.name.endswith("cache_alias")]
    return sorted({name for name in names if isinstance(name, str) and name})


@dataclass(frozen=True)
class CacheOutcome:
    alias: str
    found: int
    removed: int
    scanned: bool  # False: the backend cannot be scanned, only the keys we can name were tried
    error: str = ""


def find_and_remove(config: Config, account_id: str, named_keys: Iterable[str], *, dry_run: bool) -> list[CacheOutcome]:
    digest = account_digest(account_id)
    keys = sorted(set(named_keys))
    outcomes = []
    for alias in cache_aliases(config):
        try:
            with guard_cache():
                outcomes.append(_in_alias(alias, caches[alias], keys, digest, dry_run=dry_run))
        except CacheUnavailable as err:
            outcomes.append(CacheOutcome(alias, 0, 0, scanned=False, error=str(err)))
    return outcomes


def _in_alias(alias: str, cache: BaseCache, keys: list[str], digest: str, *, dry_run: bool) -> CacheOutcome:
    raw = _scan(cache, digest)
    named = [key for key in keys if cache.has_key(key)]
    raw_named = {cache.make_key(key) for key in named}
    found = len(named) + len([key for key in raw or () if key not in raw_named])
    if not dry_run:
        cache.delete_many(named)
        if raw:
            _delete_raw(cache, raw)
        left = _scan(cache, digest)
        if left:  # written again between the scan and the delete: once more
            _delete_raw(cache, left)
    return CacheOutcome(alias, found, 0 if dry_run else found, scanned=raw is not None)


def _private(cache: BaseCache, name: str) -> Any:
    # Django's backends keep these unpublished; a backend without them is not scanned.
    return getattr(cache, name)


def _scan(cache: BaseCache, digest: str) -> list[str] | None:
    """The raw keys (as the backend stores them) of this digest's profile entries; None: cannot scan."""
    tail = f":{digest}"
    redis = raw_redis(cache, write=False)
    if redis is not None:
        client = redis.client
        return [
            key.decode() if isinstance(key, bytes) else str(key)
            for key in client.scan_iter(match=f"*:profile:*{tail}", count=1000)
        ]
    if isinstance(cache, DatabaseCache):
        database = router.db_for_read(cache.cache_model_class)
        connection = connections[database]
        table = connection.ops.quote_name(_private(cache, "_table"))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT cache_key FROM {table} WHERE cache_key LIKE %s", [f"%:profile:%{tail}"])  # noqa: S608  (quoted name)
            return [str(row[0]) for row in cursor.fetchall()]
    if isinstance(cache, LocMemCache):
        with _private(cache, "_lock"):
            return [key for key in _private(cache, "_cache") if ":profile:" in key and key.endswith(tail)]
    return None


def _delete_raw(cache: BaseCache, raw_keys: list[str]) -> None:
    redis = raw_redis(cache, write=True)
    if redis is not None:
        redis.client.delete(*raw_keys)
    elif isinstance(cache, DatabaseCache):
        database = router.db_for_write(cache.cache_model_class)
        connection = connections[database]
        table = connection.ops.quote_name(_private(cache, "_table"))
        with connection.cursor() as cursor:
            marks = ", ".join(["%s"] * len(raw_keys))
            cursor.execute(f"DELETE FROM {table} WHERE cache_key IN ({marks})", raw_keys)  # noqa: S608  (quoted name)
    elif isinstance(cache, LocMemCache):
        with _private(cache, "_lock"):
            for key in raw_keys:
                _private(cache, "_cache").pop(key, None)
                _private(cache, "_expire_info").pop(key, None)
