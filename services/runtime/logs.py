"""Structured JSON logs on stdout, each line carrying the service, the correlation id and, in a
traced operation, the trace id (services.runtime.tracing).

A server's event loop does not format or write its log lines: a record is put on an
in-process queue as it is (its context read there and then), and a thread of its own
(`BatchWriter`) formats and writes it. The thread wakes at most every 20 ms and writes all
that came meanwhile in one write: under load, one wake-up (and one GIL hand-over) per batch
instead of per line. The queue is unbounded, so that no line is ever dropped, errors or not;
what is queued is written when the process exits.

Access log lines (one per call: `AccessLog`) are written for every call that failed or was
slow, and for those that succeeded up to a number a second (ASAN_ACCESS_LOG_PER_SECOND, 100 by
default, 0 for all): past it, a successful call is counted, not logged, and the next line
written says how many were left out. A line cost about a sixth of a cheap call's CPU; the
metrics count every call in any case.
"""

from __future__ import annotations

import atexit
import copy
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from logging.handlers import QueueHandler
from typing import Any

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
        # The message with its arguments is the same text for any other handler; a record with
        # a traceback is copied, so that others still see its exc_info.
        record.msg, record.args = record.getMessage(), None
        if exc_info := record.exc_info:
            record = copy.copy(record)
            record.exc_text = logging.Formatter().formatException(exc_info)
            record.exc_info = None
        return record


class AccessLog:
    """The line logged for each call or request (see the module's docstring): always for a call
    that failed or took `slow_seconds` or more; for one that succeeded, only while fewer than
    `per_second` were logged in the current second (0: no limit). A line written after some were
    left out carries their number as `unlogged_calls`."""

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        per_second: int,
        slow_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.clock = clock
        self.message = message
        self.per_second = per_second
        self.slow_seconds = slow_seconds
        self._second = 0
        self._logged = 0
        self._unlogged = 0

    def takes(self, succeeded: bool, seconds: float) -> bool:
        """Whether this call's line is written (then `write` it); if not, it is counted."""
        if not self.logger.isEnabledFor(logging.INFO):
            return False
        if self.per_second and succeeded and seconds < self.slow_seconds:
            second = int(self.clock())
            if second != self._second:
                self._second, self._logged = second, 0
            if self._logged >= self.per_second:
                self._unlogged += 1
                return False
            self._logged += 1
        return True

    def write(self, fields: dict[str, Any]) -> None:
        if self._unlogged:
            fields["unlogged_calls"], self._unlogged = self._unlogged, 0
        self.logger.info(self.message, extra=fields)


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
    # No line names a source line, a thread or a process: a record need not look them up
    # (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
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
