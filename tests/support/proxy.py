"""A TCP proxy between a process and a server it depends on (RabbitMQ, PostgreSQL, a gRPC
server), so that a test can take the server away from that process alone: the machine's
broker and database are shared by other tests and engineers and are never stopped.
Nothing here imports nameko or eventlet."""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import suppress


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; `stop()` cuts it off (listener closed and open
    connections severed: new ones are refused), `start()` brings it back on the same port,
    `sever()` drops the open connections only. Setting `upstream` sends new connections
    elsewhere while the open ones stay, as a Kubernetes Service does when its endpoints
    change."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._resetting: set[socket.socket] = set()
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
        self.sever()

    def sever(self, *, reset: bool = False) -> int:
        """Closes every open connection (both ends); returns how many pairs there were. With
        `reset`, they are reset (RST) rather than closed (FIN), as by a peer that crashed: the
        next write of the process fails, not only its next read."""
        with self._lock:
            connections, self._connections = self._connections, set()
            if reset:
                # Marked first: a pump that wakes while the others are being reset must reset
                # its ends too, not close them gracefully (a FIN first lets the process's next
                # write through).
                self._resetting.update(connections)
        for connection in connections:
            _sever(connection, reset=reset)
        return len(connections) // 2

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections) // 2

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
            with self._lock:
                reset = bool({source, sink} & self._resetting)
            _sever(source, reset=reset)
            _sever(sink, reset=reset)
            with self._lock:
                self._connections.difference_update((source, sink))


def _sever(connection: socket.socket, *, reset: bool = False) -> None:
    with suppress(OSError):
        if reset:
            # Closing with a zero linger resets; the read shutdown wakes the pump blocked in
            # recv, which otherwise keeps the socket open past close().
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.shutdown(socket.SHUT_RD)
        else:
            connection.shutdown(socket.SHUT_RDWR)
    connection.close()
