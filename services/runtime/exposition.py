"""The HTTP side of a process: /metrics (and a worker's /readyz, /livez) in a thread.

Free of grpcio and of eventlet, so that the servers and the event workers share it."""

from __future__ import annotations

import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

# How often the serving thread looks for a shutdown: prometheus_client's start_http_server
# keeps socketserver's half second, which every stopping server would wait out.
POLL_SECONDS = 0.05


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes are not news."""


def serve_http(port: int, app: Any, name: str, host: str = "0.0.0.0") -> ThreadingWSGIServer:  # noqa: S104
    """`app` on http://host:port (port 0: a free one, `server_port` says which) in a daemon
    thread; `shutdown()` stops it within POLL_SECONDS."""
    httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    serving = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, name=name, daemon=True
    )
    serving.start()
    return httpd


def serve_metrics(port: int, registry: CollectorRegistry, host: str = "0.0.0.0") -> ThreadingWSGIServer:  # noqa: S104
    """/metrics of `registry`, as prometheus_client's start_http_server serves it."""
    return serve_http(port, make_wsgi_app(registry), "metrics", host)
