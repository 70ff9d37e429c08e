"""Compare-and-delete and compare-and-set on the shared cache, as atomic as each backend allows.

Django's cache API has ``add`` but nothing that changes an entry only if it still holds the value
the caller read. The lock's release and refresh and the token's tombstone need exactly that, or a
process deletes a lock another process took meanwhile, or a tombstone overwrites a newer token.

Per backend (``docs/cache-backends.md`` says the same for host projects):

* Redis, Django's ``RedisCache`` and django-redis' default client: one Lua script run by the server
  on the primary, comparing the stored bytes with the backend's own serialisation of the value.
* Django's database cache: one conditional ``UPDATE`` / ``DELETE`` statement, atomic on every
  database Django supports.
* Local memory: under the backend's own lock (one process only, so the lock is the process's).
* Anything else (file-based, other clients): read, compare, write; not atomic, and checks warn.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from django.conf import settings
from django.core.cache import BaseCache
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.db import connections, router
from django.utils.timezone import now as tz_now

DELETE_IF: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

REPLACE_IF: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


class CompareAndSwap(Protocol):
    #: How the swap is made, as health and the docs name it.
    kind: str

    def delete_if(self, key: str, expected: Any) -> bool:
        """Delete ``key`` only if it holds ``expected``; True if it was deleted."""
        ...

    def replace_if(self, key: str, expected: Any, new: Any, ttl: int) -> bool:
        """Set ``key`` to ``new`` for ``ttl`` seconds only if it holds ``expected``."""
        ...


class RedisScripts:
    """The swaps as server-side scripts, on the primary (the write client)."""

    kind = "redis-lua"

    def __init__(self, cache: BaseCache, client: Any, encode: Any) -> None:
        self.cache = cache
        self.client = client
        self.encode = encode

    def delete_if(self, key: str, expected: Any) -> bool:
        full = self.cache.make_and_validate_key(key)
        return bool(self.client.eval(DELETE_IF, 1, full, self.encode(expected)))

    def replace_if(self, key: str, expected: Any, new: Any, ttl: int) -> bool:
        full = self.cache.make_and_validate_key(key)
        return bool(self.client.eval(REPLACE_IF, 1, full, self.encode(expected), self.encode(new), int(ttl)))


class DatabaseStatements:
    """The swaps as one conditional statement on Django's cache table."""

    kind = "database-statement"

    def __init__(self, cache: DatabaseCache) -> None:
        self.cache = cache

    def _encoded(self, value: Any) -> str:
        # As DatabaseCache stores it: base64 of the pickle, which is deterministic for one value.
        return base64.b64encode(pickle.dumps(value, self.cache.pickle_protocol)).decode("latin1")

    @property
    def _table(self) -> str:
        return str(getattr(self.cache, "_table"))  # noqa: B009  (private, and untyped in the stubs)

    def _connection(self) -> Any:
        return connections[router.db_for_write(self.cache.cache_model_class)]

    def delete_if(self, key: str, expected: Any) -> bool:
        connection = self._connection()
        quote = connection.ops.quote_name
        sql = f"DELETE FROM {quote(self._table)} WHERE {quote('cache_key')} = %s AND {quote('value')} = %s"  # noqa: S608  (quoted names, bound values)
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.cache.make_and_validate_key(key), self._encoded(expected)])
            return bool(cursor.rowcount)

    def replace_if(self, key: str, expected: Any, new: Any, ttl: int) -> bool:
        connection = self._connection()
        quote = connection.ops.quote_name
        tz = UTC if settings.USE_TZ else None
        timeout = self.cache.get_backend_timeout(ttl)
        expires = datetime.fromtimestamp(float(timeout), tz=tz).replace(microsecond=0) if timeout else datetime.max
        now = tz_now().replace(microsecond=0)
        sql = (
            f"UPDATE {quote(self._table)} SET {quote('value')} = %s, {quote('expires')} = %s "  # noqa: S608
            f"WHERE {quote('cache_key')} = %s AND {quote('value')} = %s AND {quote('expires')} > %s"
        )
        params = [
            self._encoded(new),
            connection.ops.adapt_datetimefield_value(expires),
            self.cache.make_and_validate_key(key),
            self._encoded(expected),
            connection.ops.adapt_datetimefield_value(now),
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return bool(cursor.rowcount)


class LocalMemoryLock:
    """The swaps under LocMemCache's own lock: atomic within the one process that sees the cache."""

    kind = "local-memory-lock"

    def __init__(self, cache: LocMemCache) -> None:
        self.cache = cache

    def _holds(self, full: str, expected: Any) -> bool:
        cache: Any = self.cache
        if full not in cache._cache or cache._has_expired(full):
            return False
        return bool(cache._cache[full] == pickle.dumps(expected, cache.pickle_protocol))

    def delete_if(self, key: str, expected: Any) -> bool:
        cache: Any = self.cache
        full = cache.make_and_validate_key(key)
        with cache._lock:
            if not self._holds(full, expected):
                return False
            return bool(cache._delete(full))

    def replace_if(self, key: str, expected: Any, new: Any, ttl: int) -> bool:
        cache: Any = self.cache
        full = cache.make_and_validate_key(key)
        with cache._lock:
            if not self._holds(full, expected):
                return False
            cache._set(full, pickle.dumps(new, cache.pickle_protocol), ttl)
            return True


class ReadThenWrite:
    """No atomic swap: read, compare, write. Two processes can interleave between the steps."""

    kind = "read-then-write"

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache

    def delete_if(self, key: str, expected: Any) -> bool:
        if self.cache.get(key) != expected:
            return False
        return bool(self.cache.delete(key))

    def replace_if(self, key: str, expected: Any, new: Any, ttl: int) -> bool:
        if self.cache.get(key) != expected:
            return False
        self.cache.set(key, new, ttl)
        return True


def compare_and_swap(cache: BaseCache) -> CompareAndSwap:
    """The most atomic swap ``cache``'s backend allows (see the module's docstring)."""
    if isinstance(cache, RedisCache):
        client: Any = cache._cache
        return RedisScripts(cache, client.get_client(write=True), client._serializer.dumps)
    django_redis = _django_redis_default_client(cache)
    if django_redis is not None:
        return RedisScripts(cache, django_redis.get_client(write=True), django_redis.encode)
    if isinstance(cache, DatabaseCache):
        return DatabaseStatements(cache)
    if isinstance(cache, LocMemCache):
        return LocalMemoryLock(cache)
    return ReadThenWrite(cache)


@dataclass(frozen=True)
class RawRedis:
    """The redis-py client under a Django cache, and how that cache turns stored bytes into values."""

    client: Any
    loads: Callable[[bytes], Any]


def raw_redis(cache: BaseCache, *, write: bool) -> RawRedis | None:
    """The raw client of Django's RedisCache or django-redis' default client; None for other backends."""
    if isinstance(cache, RedisCache):
        inner: Any = cache._cache
        return RawRedis(inner.get_client(None, write=write), inner._serializer.loads)
    django_redis = _django_redis_default_client(cache)
    if django_redis is not None:
        return RawRedis(django_redis.get_client(write=write), django_redis.decode)
    return None


def _django_redis_default_client(cache: BaseCache) -> Any:
    """django-redis' client when it is the default one (its herd and shard clients store values otherwise)."""
    try:
        from django_redis.cache import RedisCache as DjangoRedisCache
        from django_redis.client import DefaultClient
    except ImportError:
        return None
    if not isinstance(cache, DjangoRedisCache):
        return None
    client = cache.client
    return client if type(client) is DefaultClient else None
