"""Request-scoped values, carried by contextvars through a call and into logs and events."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.runtime.auth import Principal

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
principal_var: ContextVar[Principal | None] = ContextVar("principal", default=None)


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def current_correlation_id() -> str | None:
    return correlation_id_var.get()
