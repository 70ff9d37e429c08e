"""Fetch ahead: a generator's next items produced in a background thread, a bounded number at a time.

The sync writes a page to the database while the next pages are downloaded and parsed, so that network
time and database time overlap instead of adding up. :class:`Prefetcher` runs the page generator in a
thread of its own and holds at most ``ahead`` produced items that the consumer has not taken: the
thread waits for room *before* it asks for the next item, so memory is bounded by the look-ahead
(``ahead`` items buffered, plus the one the consumer holds).

What the generator raises is handed to the consumer in order, after the items produced before it,
as the same exception object, so the caller catches the same types as when it iterates directly.
Closing (the consumer is done, failed, or was abandoned) wakes a waiting thread at once; a thread
inside a request stops when that request ends (bounded by its timeouts), and the generator is closed
in its own thread. The thread closes its Django database connections when it ends: a database cache
read for the token opens one.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

from django.db import connections

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ITEM, _END, _ERROR = "item", "end", "error"


def close_source(source: Iterator[object]) -> None:
    """Close a generator (its ``finally`` blocks run); other iterators have nothing to close."""
    close = getattr(source, "close", None)
    if close is not None:
        close()


class Prefetcher(Generic[T]):
    """Iterate ``source`` with up to ``ahead`` items produced ahead of the consumer, in a thread.

    Use as a context manager: leaving it stops the thread and waits for it (up to ``join_timeout``
    seconds; the thread is a daemon, and one still inside a request is logged and stops after it).
    """

    def __init__(self, source: Iterator[T], ahead: int, *, name: str, join_timeout: float) -> None:
        if ahead < 1:
            raise ValueError("A Prefetcher fetches at least one item ahead.")
        self._source = source
        self._ahead = ahead
        self._join_timeout = join_timeout
        self._buffer: deque[tuple[str, T | BaseException | None]] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._finished = False
        # The caller's context variables (access purpose, tracing) reach the generator's code.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._produce,), name=name, daemon=True)

    def __enter__(self) -> Prefetcher[T]:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        with self._changed:
            while not self._buffer:
                self._changed.wait()
            kind, value = self._buffer.popleft()
            self._changed.notify_all()  # room for the producer
        if kind == _ITEM:
            return value  # type: ignore[return-value]
        self._finished = True
        if kind == _ERROR:
            assert isinstance(value, BaseException)  # noqa: S101  (how _ERROR is built)
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the producer, drop what it buffered, and wait for its thread."""
        with self._changed:
            self._closed = True
            self._buffer.clear()
            self._changed.notify_all()
        if self._thread.ident is None or self._thread is threading.current_thread():
            return
        self._thread.join(self._join_timeout)
        if self._thread.is_alive():
            logger.warning(
                "Prefetch thread %s is still inside a request after %g s; it stops when the request ends",
                self._thread.name,
                self._join_timeout,
            )

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def _produce(self) -> None:
        ended = False
        try:
            while self._wait_for_room():
                try:
                    item = next(self._source)
                except StopIteration:
                    ended = True
                    self._put(_END, None)
                    return
                except BaseException as err:  # handed to the consumer, which raises it
                    ended = True
                    self._put(_ERROR, err)
                    return
                self._put(_ITEM, item)
            ended = True  # closed by the consumer
        finally:
            if not ended:  # this loop itself failed: the consumer must not wait for an item forever
                self._put(_ERROR, RuntimeError(f"Prefetch thread {self._thread.name} stopped unexpectedly."))
            try:
                close_source(self._source)
            finally:
                connections.close_all()  # this thread's connections only: they are per thread

    def _wait_for_room(self) -> bool:
        """Block while ``ahead`` items wait for the consumer; False once closed."""
        with self._changed:
            if len(self._buffer) >= self._ahead and not self._closed and logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "Prefetch thread %s: %d items ahead, waiting for the consumer",
                    self._thread.name,
                    len(self._buffer),
                    extra={"prefetched": [value for kind, value in self._buffer if kind == _ITEM]},
                )
            while len(self._buffer) >= self._ahead and not self._closed:
                self._changed.wait()
            return not self._closed

    def _put(self, kind: str, value: T | BaseException | None) -> None:
        with self._changed:
            if not self._closed:
                self._buffer.append((kind, value))
                self._changed.notify_all()
