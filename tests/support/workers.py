"""What the worker tests drive: the worker subprocess, a TCP proxy to cut the broker off,
bounded polling and broker clean-up. Nothing here imports nameko or eventlet."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "event workers ready"


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Polls `condition` until it holds; fails the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


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
            env={**os.environ, **env},
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


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; `stop()` cuts it off (listener closed and open
    connections severed), `start()` brings it back on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # A thread blocked in accept() keeps the port bound: let it see the stop first.
            self._acceptor.join()
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            _sever(connection)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                _sever(client)
                continue
            with self._lock:
                self._connections.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _sever(source)
            _sever(sink)
            with self._lock:
                self._connections.difference_update((source, sink))


def _sever(connection: socket.socket) -> None:
    with suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


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
