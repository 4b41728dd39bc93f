"""Structured JSON logs on stdout, each line carrying the service, the correlation id and, in a
traced operation, the trace id (services.runtime.tracing)."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from services.runtime import tracing
from services.runtime.context import correlation_id_var


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.correlation_id = correlation_id_var.get()
        record.trace_id = tracing.current_trace_id()
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Replaces the root handlers with one JSON handler; call once at process start."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}{service}{correlation_id}{trace_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
