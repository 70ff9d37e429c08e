"""Run a callable in many threads at once, for tests that force concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_in_threads(target: Callable[[], Any], count: int) -> list[Any]:
    """Run ``target`` in ``count`` threads at once; return results or raised exceptions."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = target()
        except Exception as err:  # collected for the caller's assertions
            results[index] = err
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
