"""Ports for the processes a test starts. A port chosen now and bound by a process seconds later
(after its migrations, say) must not be one the kernel may hand out meanwhile to an outgoing
connection: its ephemeral range, where a bind to port 0 lands too, is what every client socket
on the machine draws from. These ports come from below that range, at random, each checked free
when chosen."""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

_LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_ports(count: int) -> list[int]:
    """`count` different ports free on the loopback now, none in the ephemeral range."""
    highest = _ephemeral_start() - 1
    chosen: list[int] = []
    with contextlib.ExitStack() as held:  # each is held until all are chosen
        while len(chosen) < count:
            port = random.randint(_LOWEST, highest)
            if port in chosen:
                continue
            probe = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another one
            chosen.append(port)
    return chosen


def free_port() -> int:
    return free_ports(1)[0]
