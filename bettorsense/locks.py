"""A fleet-wide lock in the shared cache that only its owner releases or extends.

``cache.add`` takes it, with a TTL, so a holder that dies frees it when the TTL runs out. The token
renewal's single flight and the daily sync's one-run-per-bookmaker use it.

The entry is a sealed entry (:mod:`bettorsense.sealing`, bound to the lock's key) naming its owner
and its deadline (the holder's clock). Release and refresh compare the whole entry and swap it in
one step (:mod:`bettorsense.atomic`), so a process never deletes or extends a lock that expired and
was taken by another one meanwhile.

An entry that is no lock of ours (malformed, forged, copied from another key, ``SET <key> 7`` with
no expiry) or whose deadline passed long ago stops nobody for long: whoever finds it waits
:data:`BREAK_AFTER`, and if the very same entry is still there, deletes exactly that entry and takes
the lock. Deadlines are allowed :data:`CLOCK_SLACK` of skew between machines before they count as
past, and a deadline read is never believed beyond now plus the lock's TTL. A lock written by
another version of the app (a rolling upgrade) is respected as held until its own TTL frees it.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from django.core.cache.backends.db import DatabaseCache

from bettorsense import entries
from bettorsense.atomic import CompareAndSwap, compare_and_swap
from bettorsense.cache import CacheUnavailable, backend_of, cache_key, guard_cache, shared_cache, ttl_seconds
from bettorsense.sealing import Verdict, open_sealed, seal

if TYPE_CHECKING:
    from django.core.cache import BaseCache

    from bettorsense.conf import Config
    from bettorsense.tokens.clock import Clock

logger = logging.getLogger(__name__)

#: The entries' kind, part of what the seal binds.
LOCK_KIND: Final = "lock"
#: How long a foreign or long-expired entry must stay unchanged before it is broken.
BREAK_AFTER: Final = 1.0
#: Skew between machines' clocks that a lock's deadline is allowed before it counts as past.
CLOCK_SLACK: Final = 60.0
#: Longest owner id believed; ours are about 20 characters.
MAX_OWNER: Final = 64
#: The owner reported for a lock of another version of the app, which this one cannot read.
OTHER_VERSION_OWNER: Final = "(another version of the app)"


@dataclass(frozen=True)
class LockEntry:
    owner: str
    deadline: float


class OwnerLock:
    """One named lock of one set of credentials; every call but :meth:`release` raises CacheUnavailable."""

    def __init__(self, config: Config, name: str, ttl: float, *, clock: Clock | None = None) -> None:
        # Imported here: bettorsense.tokens imports this module (through tokens.shared).
        from bettorsense.tokens.clock import SYSTEM_CLOCK

        self.config = config
        self.key = cache_key(config, name)
        self.ttl = ttl_seconds(ttl)
        self.clock = SYSTEM_CLOCK if clock is None else clock
        self._held: dict[str, str] = {}  # owner -> the entry it wrote, as stored

    @property
    def cache(self) -> BaseCache:
        return shared_cache(self.config)

    @property
    def swap(self) -> CompareAndSwap:
        return compare_and_swap(backend_of(self.cache))

    def _entry(self, owner: str) -> str:
        payload = {"owner": owner, "deadline": self.clock.now() + self.ttl}
        return seal(self.config, payload, key=self.key, kind=LOCK_KIND)

    def entry_of(self, raw: Any) -> LockEntry | Verdict:
        """The lock ``raw`` holds, or why it holds none (absent, another version's, malformed)."""
        opened = open_sealed(self.config, raw, key=self.key, kind=LOCK_KIND)
        if opened.verdict is not Verdict.OK or opened.data is None:
            return opened.verdict
        try:
            return LockEntry(
                owner=entries.text(opened.data, "owner", max_length=MAX_OWNER),
                deadline=entries.number(opened.data, "deadline"),
            )
        except entries.Malformed:
            return Verdict.MALFORMED

    def acquire(self) -> str | None:
        """The owner id if the caller now holds the lock, else None (a live holder has it)."""
        owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        entry = self._entry(owner)
        with guard_cache():
            if self.cache.add(self.key, entry, self.ttl):
                self._held[owner] = entry
                return owner
            found = self.cache.get(self.key)
            if found is None:
                # Freed since the add, or a cache that fails silently (it refuses every add and reads
                # nothing): one more try tells the two apart.
                if self.cache.add(self.key, entry, self.ttl):
                    self._held[owner] = entry
                    return owner
                if self.cache.get(self.key) is None and not isinstance(backend_of(self.cache), DatabaseCache):
                    # The database cache's add() also answers False for a database error it swallows
                    # (SQLite's lock contention): a transient refusal there, so the caller waits.
                    raise CacheUnavailable("the cache refuses the lock while reading it empty (failing silently)")
                return None
            if not self.is_stale(found):
                return None
            return owner if self._break_and_take(found, owner, entry) else None

    def is_stale(self, raw: Any) -> bool:
        """Whether ``raw`` is no live lock: malformed or foreign, or past its deadline beyond the slack."""
        entry = self.entry_of(raw)
        if entry is Verdict.MALFORMED:
            return True
        if not isinstance(entry, LockEntry):
            return False  # absent, or another version's lock: its TTL frees it
        now = self.clock.now()
        return min(entry.deadline, now + self.ttl) + CLOCK_SLACK < now

    def _break_and_take(self, found: Any, owner: str, entry: str) -> bool:
        """Wait BREAK_AFTER; if ``found`` is still the entry, delete exactly it and take the lock."""
        self.clock.sleep(BREAK_AFTER)
        if self.cache.get(self.key) != found:
            return False  # its holder (or another breaker) changed it: not ours to break
        if not self.swap.delete_if(self.key, found):
            return False
        logger.warning("Broke the lock %s: its entry was stale or not a lock of this app", self.key.rsplit(":", 1)[-1])
        if not self.cache.add(self.key, entry, self.ttl):
            return False
        self._held[owner] = entry
        return True

    def holder(self) -> str | None:
        """The live holder's owner id; None when free, or when the entry is stale (acquire breaks it)."""
        with guard_cache():
            raw = self.cache.get(self.key)
        return self.holder_of(raw)

    def holder_of(self, raw: Any) -> str | None:
        """:meth:`holder` for an entry already read."""
        if raw is None or self.is_stale(raw):
            return None
        entry = self.entry_of(raw)
        return entry.owner if isinstance(entry, LockEntry) else OTHER_VERSION_OWNER

    def refresh(self, owner: str) -> bool:
        """Give the lock its full TTL and a new deadline; False if ``owner`` no longer holds it."""
        held = self._held.get(owner)
        if held is None:
            return False
        entry = self._entry(owner)
        with guard_cache():
            if not self.swap.replace_if(self.key, held, entry, self.ttl):
                return False
        self._held[owner] = entry
        return True

    def release(self, owner: str) -> None:
        """Free the lock if ``owner`` still holds it; a cache failure leaves it to expire."""
        held = self._held.pop(owner, None)
        if held is None:
            return
        try:
            with guard_cache():
                self.swap.delete_if(self.key, held)
        except CacheUnavailable:
            pass
