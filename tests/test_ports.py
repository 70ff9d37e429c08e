"""The suite's servers listen outside the ephemeral range, so a restart on the same port cannot collide.

A CI run lost e2e scenario 4 at the moment its Redis came back after a 26 s outage. The port had
come from ``bind(0)``, which draws from the same range as every ``connect()`` the fleet made in the
meantime, and a listener cannot bind a port that a client socket holds.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from pathlib import Path

from harness.ports import LINUX_DEFAULT_EPHEMERAL, RESERVED, candidate_ports, ephemeral_range, free_port


def test_a_port_held_by_an_outgoing_connection_cannot_be_listened_on() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            held = client.getsockname()[1]
            with socket.socket() as restarted:
                restarted.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    restarted.bind(("127.0.0.1", held))
                except OSError:
                    collided = True
                else:
                    collided = False
    low, high = ephemeral_range()
    assert low <= held <= high  # the client's port came from the ephemeral range
    assert collided  # and a server restarted on it would have failed: this is what free_port avoids


def test_free_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert not [port for port in ports if low <= port <= high]
    assert not RESERVED.intersection(ports)
    for port in ports[:20]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_free_port_skips_a_port_that_is_taken() -> None:
    offered: list[int] = []

    def taken_first(candidates: Sequence[int]) -> int:
        offered.append(port if not offered else random.choice(candidates))
        return offered[-1]

    with socket.socket() as taken:
        port = free_port()
        taken.bind(("127.0.0.1", port))
        taken.listen()
        other = free_port(choose=taken_first)
    assert offered[0] == port and len(offered) >= 2
    assert other == offered[-1] != port


def test_the_ephemeral_range_is_read_from_the_kernel_with_a_fallback(tmp_path: Path) -> None:
    good = tmp_path / "range"
    good.write_text("40000\t50000\n")
    assert ephemeral_range(good) == (40000, 50000)
    bad = tmp_path / "bad"
    bad.write_text("forty thousand\n")
    assert ephemeral_range(bad) == LINUX_DEFAULT_EPHEMERAL
    assert ephemeral_range(tmp_path / "missing") == LINUX_DEFAULT_EPHEMERAL
    candidates = candidate_ports(40000, 50000)
    assert 39999 in candidates and 50001 in candidates
    assert 40000 not in candidates and 50000 not in candidates and 45000 not in candidates
    assert not RESERVED.intersection(candidates)
