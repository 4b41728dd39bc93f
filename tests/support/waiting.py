"""Waiting in a test for what the servers under it do next, in the same event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], *, what: str, within: float = 10.0) -> None:
    """Polls `condition` without blocking the event loop, in which the servers' calls and
    background loops run; fails naming `what` if it is not met within `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)
