"""Per-configuration objects of this process, forgotten in a forked child.

The token manager, the circuit breaker and the telemetry throttle each keep one object per resolved
:class:`~bettorsense.conf.Config`. A config is memoised until a setting changes, so its identity is
the key; the entry keeps the config itself so that a new config at a reused ``id()`` is not
mistaken for the old one. Celery's prefork pool and gunicorn fork after import: a child must not
inherit its parent's locks, memoised tokens or throttles, so every registry empties after a fork.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from bettorsense.conf import Config

T = TypeVar("T")

_registries: weakref.WeakSet[PerConfig[object]] = weakref.WeakSet()


class PerConfig(Generic[T]):
    """``registry.get(config)`` builds the object on first use, once per config and process."""

    def __init__(self, build: Callable[[Config], T]) -> None:
        self._build = build
        self._entries: dict[int, tuple[Config, T]] = {}
        self._lock = threading.Lock()
        _registries.add(self)  # type: ignore[arg-type]  # invariance: the set only ever calls clear()

    def get(self, config: Config) -> T:
        entry = self._entries.get(id(config))
        if entry is not None and entry[0] is config:
            return entry[1]
        with self._lock:
            entry = self._entries.get(id(config))
            if entry is None or entry[0] is not config:
                entry = (config, self._build(config))
                self._entries[id(config)] = entry
            return entry[1]

    def values(self) -> list[T]:
        return [value for _, value in list(self._entries.values())]

    def clear(self) -> None:
        self._entries = {}
        self._lock = threading.Lock()


def reset_all() -> None:
    """Forget every per-config object of this process (after a fork; between tests)."""
    for registry in list(_registries):
        registry.clear()


os.register_at_fork(after_in_child=reset_all)
