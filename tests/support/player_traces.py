"""Where a player's id (or a value derived from it) is still held: every table, every cache alias.

The search does not trust the app's idea of where it writes: it reads every column of every table
of the database (cast to text) and every entry of every configured cache alias, raw from the
backend (Redis keys and values, the database cache's rows, local memory), values unpickled.
"""

from __future__ import annotations

import base64
import fcntl
import pickle
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection

from bettorsense.atomic import raw_redis

ERASURE_LOCK = Path(tempfile.gettempdir()) / "bettorsense-tests-erasure.lock"


def traces(needles: list[str]) -> list[str]:
    """``table.column: value`` and ``cache alias: key = value`` for each place holding a needle."""
    return [*table_traces(needles), *cache_traces(needles)]


def _matcher(needles: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(rf"(?<![\w-]){re.escape(n)}(?![\w-])" for n in needles))


def table_traces(needles: list[str]) -> list[str]:
    found = []
    match = _matcher(needles)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
            for column in columns:
                cursor.execute(f"SELECT CAST({quote(column)} AS TEXT) FROM {quote(table)}")  # noqa: S608
                for (value,) in cursor.fetchall():
                    text = _decoded_cache_value(table, column, value)
                    if text is not None and match.search(text):
                        found.append(f"{table}.{column}: {text[:200]}")
    return found


def _decoded_cache_value(table: str, column: str, value: Any) -> str | None:
    """A database cache row's value, unpickled, so a pickled id is found too."""
    if value is None:
        return None
    text = str(value)
    if column == "value" and any(
        isinstance(caches[a], DatabaseCache) and caches[a]._table == table for a in settings.CACHES
    ):
        try:
            return text + " " + repr(pickle.loads(base64.b64decode(text.encode())))  # noqa: S301
        except Exception:
            return text
    return text


def cache_traces(needles: list[str]) -> list[str]:
    found = []
    match = _matcher(needles)
    for alias in settings.CACHES:
        for key, value in _raw_entries(caches[alias]):
            if match.search(key) or match.search(value):
                found.append(f"{alias}: {key} = {value[:200]}")
    return found


def _raw_entries(cache: Any) -> list[tuple[str, str]]:
    redis = raw_redis(cache, write=False)
    if redis is not None:
        entries = []
        for key in redis.client.scan_iter(match="*"):
            raw = redis.client.get(key)
            try:
                value = repr(redis.loads(raw))
            except Exception:
                value = repr(raw)
            entries.append((key.decode(), value))
        return entries
    if isinstance(cache, LocMemCache):
        return [(key, repr(pickle.loads(raw))) for key, raw in list(cache._cache.items())]  # noqa: S301
    return []  # the database cache is a table: table_traces reads it


def distinct_aliases() -> list[str]:
    """The cache aliases, one per store: two aliases on one Redis database or table are read once."""
    seen: set[tuple[str, str]] = set()
    aliases = []
    for alias, options in settings.CACHES.items():
        store = (options["BACKEND"], repr(options.get("LOCATION")))
        if store not in seen:
            seen.add(store)
            aliases.append(alias)
    return aliases


def cached_keys(needle: str) -> list[str]:
    """The raw keys, in every cache alias, that hold ``needle`` (the database cache's too)."""
    keys = []
    quote = connection.ops.quote_name
    for alias in distinct_aliases():
        cache = caches[alias]
        if isinstance(cache, DatabaseCache):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT cache_key FROM {quote(cache._table)}")  # noqa: S608
                keys += [f"{alias}: {key}" for (key,) in cursor.fetchall() if needle in key]
        else:
            keys += [f"{alias}: {key}" for key, _ in _raw_entries(cache) if needle in key]
    return keys


def cache_entries() -> list[tuple[str, str]]:
    """Every (raw key, value) of every alias, the database cache's too (values as stored)."""
    entries: list[tuple[str, str]] = []
    quote = connection.ops.quote_name
    for alias in distinct_aliases():
        cache = caches[alias]
        if isinstance(cache, DatabaseCache):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT cache_key, value FROM {quote(cache._table)}")  # noqa: S608
                entries += [(str(key), str(value)) for key, value in cursor.fetchall()]
        else:
            entries += _raw_entries(cache)
    return entries


@contextmanager
def erasing_alone() -> Iterator[None]:
    """Hold the machine-wide erasure lock: an erasure scans every key of the shared Redis, so two
    workers erasing the same player would delete each other's planted copies."""
    with open(ERASURE_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
