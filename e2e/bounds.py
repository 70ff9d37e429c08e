"""The bounds the scenarios check, derived from the design rather than measured.

Token backoff (tokens.py ``_backoff_delay``): after the k-th consecutive failed token request the
whole fleet waits ``d_k = min(BACKOFF_MAX, BACKOFF_BASE * 2**(k-1))``, times a jitter in
[0.8, 1.2], before anyone asks again (and never less than a ``Retry-After``). Requests are
serialised by the fleet lock and the shared backoff entry, so if the first failed request is
sent at ``t_1`` and the n-th at ``t_n``, then ``t_n - t_1 >= 0.8 * (d_1 + ... + d_{n-1})``. Within
``D`` seconds of the first failure the fleet therefore sends at most
``1 + max{m : 0.8 * (d_1 + ... + d_m) <= D}`` token requests, whatever the number of processes.
"""

from __future__ import annotations

JITTER_MIN = 0.8
JITTER_MAX = 1.2


def backoff_delay(failures: int, base: float, maximum: float) -> float:
    """The nominal delay after the ``failures``-th consecutive failure (before jitter)."""
    return min(maximum, base * 2 ** max(0, failures - 1))


def max_token_requests(duration: float, base: float, maximum: float) -> int:
    """The most token requests the fleet can send within ``duration`` s of its first failed one."""
    requests, elapsed = 1, 0.0
    while True:
        elapsed += JITTER_MIN * backoff_delay(requests, base, maximum)
        if elapsed > duration:
            return requests
        requests += 1


def longest_wait(failures: int, base: float, maximum: float) -> float:
    """The longest backoff the fleet can be in after ``failures`` consecutive failures (jitter included)."""
    return JITTER_MAX * backoff_delay(max(1, failures), base, maximum)
