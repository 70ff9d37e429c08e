"""A bounded, process-local memo of parsed profile-cache answers, in front of the shared cache.

A profile served from the shared cache costs a ``cache.get``, opening the sealed entry, parsing the
vendor's JSON and building the dataclasses: about three ``cache.get``'s worth. The memo keeps what
that work gave (the profile, or a remembered 404) for ``PROFILE_MEMO_TTL`` seconds, so a hot read
is a dictionary look-up and a clock read.

* **Keys.** The profile cache key (:func:`bettorsense.services.profile_cache_key`): key prefix,
  credential set, credentials identity, bookmaker pair and a digest of the account id. One set's or
  one bookmaker's answer is never another's.
* **Deadlines.** An entry is served until the earlier of its shared entry's own deadline (the next
  daily recompute, or a remembered 404's end) and ``PROFILE_MEMO_TTL`` after it was put. Both are
  turned, at the put, into one instant on the monotonic clock, so a hot read reads one clock and a
  wall clock set back does not lengthen an entry's life.
* **Bound.** At most ``PROFILE_MEMO_SIZE`` entries per process. Entries are kept in the order they
  were put and the oldest goes first: every entry ends ``PROFILE_MEMO_TTL`` after its put however
  often it is read, so recency of use buys little, while put order makes the oldest entry the one
  that ends first. Each access drops the entries whose TTL is over, from the oldest, in O(1)
  amortised time: no entry stays in memory past its TTL once the process reads or writes the memo.
* **What fills it.** What the service call read from the shared cache, or wrote to it (a profile
  from the API or the store, a 404). ``fresh=True`` neither reads nor writes it.
* **Emptied** when a setting that changes keys or entries changes (``setting_changed``), in a forked
  child (gunicorn ``--preload``, Celery prefork: a parent's memo is not inherited), and for one
  player by :func:`bettorsense.privacy.erasure.erase_player` in its own process. Another process's
  copy ends within ``PROFILE_MEMO_TTL``.

Nothing here logs; an entry's repr is the dataclass's, which names the player, so it is never logged.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from django.core.signals import setting_changed
from django.dispatch import receiver

from bettorsense.cached_profiles import CachedMiss
from bettorsense.profiles import RiskProfile
from bettorsense.tokens.clock import SYSTEM_CLOCK, Clock

#: The settings whose change makes a new Config (conf._forget_config): new keys, new entries.
_RESETTING_SETTINGS = frozenset({"BETTORSENSE", "SECRET_KEY", "SECRET_KEY_FALLBACKS", "CACHES"})

#: What is served: the profile (its ``source`` already ``cache``) or the remembered 404.
Answer = RiskProfile | CachedMiss


class _Entry(NamedTuple):
    answer: Answer
    served_until: float  # monotonic: the earlier of the shared entry's deadline and ``dropped_at``
    dropped_at: float  # monotonic: put time + PROFILE_MEMO_TTL; entries are in this order


class ProfileMemo:
    """The memo of one process. ``clock`` is injectable (tests move it instead of sleeping)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._oldest_dropped_at = math.inf  # ``dropped_at`` of the oldest entry; inf when empty
        self._lock = threading.Lock()

    @property
    def clock(self) -> Clock:
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._clock = clock
        self._monotonic = clock.monotonic  # bound once: the hot read calls it directly

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Answer | None:
        """The answer under ``key`` while both its deadlines hold; None otherwise."""
        monotonic = self._monotonic()
        if self._oldest_dropped_at <= monotonic:
            with self._lock:
                self._drop_ended(monotonic)
        # No lock for the look-up: one OrderedDict.get is atomic under the interpreter lock, and an
        # entry is a tuple that no one changes; every change to the dict is made under the lock.
        entry = self._entries.get(key)
        if entry is None or entry.served_until <= monotonic:
            return None
        return entry.answer

    def put(self, key: str, answer: Answer, until: float, *, ttl: float, size: int) -> None:
        """Remember ``answer`` until ``until`` (wall clock) and at most ``ttl`` seconds; no-op if either is 0."""
        if ttl <= 0 or size <= 0:
            return
        clock = self._clock
        monotonic = clock.monotonic()
        dropped_at = monotonic + ttl
        entry = _Entry(answer, min(dropped_at, monotonic + (until - clock.now())), dropped_at)
        with self._lock:
            entries = self._entries
            entries.pop(key, None)  # a new put goes to the end: the order is the put order
            entries[key] = entry
            while len(entries) > size:
                entries.popitem(last=False)
            self._drop_ended(monotonic)

    def forget_account(self, digest: str, *, dry_run: bool = False) -> int:
        """Drop every entry of the account whose key digest is ``digest`` (any set, pair or prefix).

        Returns how many there were; ``dry_run`` counts them and drops nothing.
        """
        tail = f":{digest}"
        with self._lock:
            self._drop_ended(self.clock.monotonic())
            keys = [key for key in self._entries if key.endswith(tail)]
            if not dry_run:
                for key in keys:
                    del self._entries[key]
                self._drop_ended(self.clock.monotonic())
        return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._oldest_dropped_at = math.inf

    def _drop_ended(self, monotonic: float) -> None:
        """Drop the oldest entries while their TTL is over; the lock is held."""
        entries = self._entries
        while entries:
            oldest = next(iter(entries.values()))
            if oldest.dropped_at > monotonic:
                self._oldest_dropped_at = oldest.dropped_at
                return
            entries.popitem(last=False)
        self._oldest_dropped_at = math.inf

    def _after_fork(self) -> None:
        # The parent's lock may have been held by another thread at the fork: a new one, unheld.
        self._lock = threading.Lock()
        self._entries = OrderedDict()
        self._oldest_dropped_at = math.inf


#: This process's memo.
MEMO = ProfileMemo()

os.register_at_fork(after_in_child=MEMO._after_fork)


@receiver(setting_changed)
def _forget_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting in _RESETTING_SETTINGS:
        MEMO.clear()
