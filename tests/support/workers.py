"""What the worker tests drive: the worker subprocess, bounded polling and broker clean-up
(the TCP proxy that cuts the broker off is tests.support.proxy's). Nothing here imports
nameko or eventlet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from sqlalchemy import Table, update

from services.runtime.db import Database
from services.runtime.events import outbox_backlog

# It lived here first; the payment event tests import it from here.
from tests.support.proxy import TcpProxy

__all__ = [
    "READY_LINE",
    "TcpProxy",
    "WorkerProcess",
    "broker_tap",
    "delete_broker_entities",
    "relay_all_again",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "event workers ready"


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Polls `condition` until it holds; fails the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def relay_all_again(database: Database, outbox: Table, *, timeout: float = 30) -> None:
    """As if the relay had crashed after publishing each event and before marking it: marks the
    whole outbox unpublished, then waits until the running relay has published it all again.

    It first waits for the relay to mark what it has published. A mark still to come would
    land after the reset and keep that event, usually the last, from going out again."""

    def relayed() -> bool:
        return outbox_backlog(database, outbox) == 0

    wait_until(relayed, timeout=timeout, what="the relay marked its events")
    database.run_sync(lambda session: session.execute(update(outbox).values(published_at=None)))
    wait_until(relayed, timeout=timeout, what="the outbox relayed again")


class WorkerProcess:
    """`python -m services.runtime.workers TARGET...` in a subprocess (or the module `argv`
    names, e.g. ["services.payment", "worker"]), its output in a file."""

    def __init__(
        self, target: str | list[str], env: dict[str, str], log_path: Path, argv: list[str] | None = None
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        targets = [target] if isinstance(target, str) else target
        self.process = subprocess.Popen(
            [sys.executable, "-m", *(argv or ["services.runtime.workers", *targets])],
            cwd=REPO_ROOT,
            # Unbuffered: what the worker logged is in the file when a test reads it.
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.output()}")
            return READY_LINE in self.output()

        wait_until(ready, timeout=timeout, what=f"worker ready\n{self.output()}")

    def terminate(self, timeout: float = 10) -> float:
        """Sends SIGTERM; returns the seconds the worker took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        finally:
            self.close()
        return time.monotonic() - started

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@contextmanager
def broker_tap(amqp_uri: str, exchange_name: str, queue_name: str) -> Iterator[Callable[[], Any]]:
    """A queue bound to every event of a nameko event exchange on RabbitMQ; yields a function
    that takes the next message off it (None if there is none). Deleted afterwards."""
    with Connection(amqp_uri) as connection:  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        exchange = Exchange(exchange_name, type="topic", durable=True)  # type: ignore[no-untyped-call]
        Queue(queue_name, exchange, routing_key="#")(channel).declare()  # type: ignore[no-untyped-call]
        try:
            yield lambda: channel.basic_get(queue_name, no_ack=True)
        finally:
            channel.queue_delete(queue_name)


def delete_broker_entities(amqp_uri: str, queues: list[str], exchanges: list[str]) -> None:
    """Removes what a test declared on the shared RabbitMQ."""
    with Connection(amqp_uri) as connection:  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in exchanges:
            channel.exchange_delete(exchange)
