"""A fleet-wide lock in the shared cache that only its owner releases or extends.

``cache.add`` takes it with an owner id and a TTL, so a holder that dies frees it when the TTL runs
out. The token renewal's single flight and the daily sync's one-run-per-bookmaker use it.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

from bettorsense.cache import CacheUnavailable, cache_key, guard_cache, shared_cache, ttl_seconds

if TYPE_CHECKING:
    from django.core.cache import BaseCache

    from bettorsense.conf import Config


class OwnerLock:
    """One named lock of one set of credentials; every call but :meth:`release` raises CacheUnavailable."""

    def __init__(self, config: Config, name: str, ttl: float) -> None:
        self.config = config
        self.key = cache_key(config, name)
        self.ttl = ttl_seconds(ttl)

    @property
    def cache(self) -> BaseCache:
        return shared_cache(self.config)

    def acquire(self) -> str | None:
        """The owner id if the caller now holds the lock, else None."""
        owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        with guard_cache():
            return owner if self.cache.add(self.key, owner, self.ttl) else None

    def holder(self) -> str | None:
        with guard_cache():
            holder = self.cache.get(self.key)
        return holder if isinstance(holder, str) else None

    def refresh(self, owner: str) -> bool:
        """Give the lock its full TTL again; False if ``owner`` no longer holds it."""
        with guard_cache():
            # Read, then write: the lock can expire and be taken by another owner in between.
            return self.cache.get(self.key) == owner and bool(self.cache.touch(self.key, self.ttl))

    def release(self, owner: str) -> None:
        """Free the lock if ``owner`` still holds it; a cache failure leaves it to expire."""
        try:
            with guard_cache():
                # Read, then delete: the lock can expire and be taken by another owner in between.
                if self.cache.get(self.key) == owner:
                    self.cache.delete(self.key)
        except CacheUnavailable:
            pass
