"""Listening ports for the servers the suite starts, chosen outside the kernel's ephemeral range.

``bind(("127.0.0.1", 0))`` hands out a port from the ephemeral range, the same range ``connect()``
draws local ports from. A server stopped and started again on such a port (the e2e Redis after an
outage, the sandbox after a crash) can find it held by an outgoing connection, established or in
TIME_WAIT, and exit with "Address already in use": SO_REUSEADDR does not help against a client
socket. A port outside that range is never taken by a connect().
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_DEFAULT_EPHEMERAL = (32768, 60999)
LOWEST = 10000
# Well-known ports of the services this machine runs (RabbitMQ's management and distribution ports, epmd).
RESERVED = frozenset({15672, 25672, 4369, 5432, 5672, 6379, 3306})
ATTEMPTS = 200


def ephemeral_range(source: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range, inclusive; Linux's default when it cannot be read."""
    try:
        low, high = (int(part) for part in source.read_text().split())
    except (OSError, ValueError):
        return LINUX_DEFAULT_EPHEMERAL
    return low, high


def candidate_ports(low: int, high: int) -> list[int]:
    """Every port a server of the suite may listen on, with ``low`` to ``high`` the ephemeral range."""
    return [port for port in range(LOWEST, 65536) if not low <= port <= high and port not in RESERVED]


def free_port(host: str = "127.0.0.1", *, choose: Callable[[Sequence[int]], int] | None = None) -> int:
    """A port on ``host`` that is free now and that no outgoing connection can take later."""
    candidates = candidate_ports(*ephemeral_range())
    if not candidates:
        raise RuntimeError("the ephemeral port range leaves no port for a test server")
    choose = choose or random.SystemRandom().choice
    for _ in range(ATTEMPTS):
        port = choose(candidates)
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port outside the ephemeral range after {ATTEMPTS} attempts")
