"""Structured JSON logs on stdout, each line carrying the service, the correlation id and, in a
traced operation, the trace id (services.runtime.tracing).

A server's event loop does not format or write its log lines: a record is put on an
in-process queue as it is (its context read there and then), and a thread of its own
(`logging.handlers.QueueListener`) formats and writes it. The queue is unbounded, so that no
line is ever dropped, errors or not; what is queued is written when the process exits.
"""

from __future__ import annotations

import atexit
import copy
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener

from pythonjsonlogger.json import JsonFormatter

from services.runtime import tracing
from services.runtime.context import correlation_id_var

_listener: QueueListener | None = None


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.correlation_id = correlation_id_var.get()
        record.trace_id = tracing.current_trace_id()
        return True


class _DeferredFormatting(QueueHandler):
    """Queues records unformatted (QueueHandler's own `prepare` would format the JSON on the
    caller's thread); only what cannot wait is resolved here: the message's arguments and a
    traceback, whose frames may change once the caller goes on."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


def json_handler(service: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}{service}{correlation_id}{trace_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    )
    return handler


def configure_logging(service: str, level: str = "INFO", *, queued: bool = True) -> None:
    """Replaces the root handlers with one JSON handler, behind a queue and its writing thread
    unless `queued` is False (the event workers: eventlet's green threads); call once at
    process start."""
    global _listener  # noqa: PLW0603 (one listener per process)
    stop_queued_logging()
    handler = json_handler(service)
    if queued:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        _listener = QueueListener(records, handler)
        _listener.start()
        atexit.register(stop_queued_logging)
        handler = _DeferredFormatting(records)
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def stop_queued_logging() -> None:
    """Writes what is queued and stops the writing thread (at exit, or before a new set-up)."""
    global _listener  # noqa: PLW0603
    if _listener is not None:
        _listener.stop()
        _listener = None
