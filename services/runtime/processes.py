"""One service on every core of its pod: `ASAN_PROCESSES` copies of the server on one port.

A Python process runs on one core at a time (the GIL); with ASAN_PROCESSES=N, `serve` starts
N server processes instead of serving itself, each listening on the same gRPC port with
SO_REUSEPORT, so that the kernel spreads the incoming connections over them (a connection,
and every call on it, stays with one process: a client needs several connections to use
them all). Process i serves its metrics on the metrics port + i. The parent only supervises:
it passes SIGTERM and SIGINT on (each process drains as one alone does), and when one process
ends by itself it stops the others and ends too, with the worst exit code, so that the pod is
restarted as a whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from types import FrameType

# Set by the parent in each server process: its index (0 .. N-1).
PROCESS_INDEX = "ASAN_PROCESS_INDEX"
PROCESSES = "ASAN_PROCESSES"


_PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    """In a child before it runs: SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent's own stop is all
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(command: list[str], processes: int) -> int:
    """Runs `command` `processes` times, each with its PROCESS_INDEX; the worst exit code."""
    children = [
        # The supervisor has started no thread: preexec_fn is safe here.
        subprocess.Popen(  # noqa: S603 (our own command)
            command,
            env={**os.environ, PROCESS_INDEX: str(index)},
            preexec_fn=_end_with_parent,  # noqa: PLW1509
        )
        for index in range(processes)
    ]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    while any(child.poll() is None for child in children):
        if not stopping and any(child.poll() is not None for child in children):
            stop(signal.SIGTERM, None)  # one ended by itself: the others follow
        time.sleep(0.2)
    codes = [child.returncode for child in children]
    return max(codes, key=abs)


def serve_on_every_core(argv: list[str]) -> None:
    """If ASAN_PROCESSES asks for more than one process and this is not one of them, runs them
    (see the module's docstring) and exits with their code; otherwise returns."""
    raw = os.environ.get(PROCESSES, "")
    if PROCESS_INDEX in os.environ or not raw:
        return
    try:
        processes = int(raw)
    except ValueError:
        raise SystemExit(f"{PROCESSES} must be a whole number, got {raw!r}") from None
    if processes > 1:
        sys.exit(supervise([sys.executable, *argv], processes))
