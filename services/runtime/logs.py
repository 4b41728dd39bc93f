"""Structured JSON logs on stdout, each line carrying the service, the correlation id and, in a
traced operation, the trace id (services.runtime.tracing).

A server's event loop does not format or write its log lines: a record is put on an
in-process queue as it is (its context read there and then), and a thread of its own
(`BatchWriter`) formats and writes it. The thread wakes at most every 20 ms and writes all
that came meanwhile in one write: under load, one wake-up (and one GIL hand-over) per batch
instead of per line. The queue is unbounded, so that no line is ever dropped, errors or not;
what is queued is written when the process exits.
"""

from __future__ import annotations

import atexit
import copy
import logging
import queue
import sys
import threading
import time
from logging.handlers import QueueHandler

from pythonjsonlogger.json import JsonFormatter

from services.runtime import tracing
from services.runtime.context import correlation_id_var

_listener: BatchWriter | None = None


class BatchWriter:
    """Writes the records of `records` through `handler`'s formatter to its stream, on a thread
    of its own, in batches: after a record arrives it waits `interval` seconds for more, then
    writes and flushes them together."""

    def __init__(
        self,
        records: queue.SimpleQueue[logging.LogRecord | None],
        handler: logging.StreamHandler,  # type: ignore[type-arg]
        interval: float = 0.02,
    ) -> None:
        self.records = records
        self.handler = handler
        self.interval = interval
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Writes what is queued, then ends the thread."""
        self.records.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self.records.get()]
            time.sleep(self.interval)
            while True:
                try:
                    batch.append(self.records.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            self._write([record for record in batch if record is not None])

    def _write(self, batch: list[logging.LogRecord]) -> None:
        lines = []
        for record in batch:
            try:
                lines.append(self.handler.format(record) + self.handler.terminator)
            except Exception:  # as logging.Handler.emit: reported, only this line lost
                self.handler.handleError(record)
        if lines:
            try:
                self.handler.stream.write("".join(lines))
                self.handler.stream.flush()
            except Exception:
                self.handler.handleError(batch[-1])


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


def json_handler(service: str) -> logging.StreamHandler:  # type: ignore[type-arg]
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
    writing = json_handler(service)
    handler: logging.Handler = writing
    if queued:
        records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
        _listener = BatchWriter(records, writing)
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
