"""Finance's event worker: relays its outbox (ConsentRequested, ConsentApproved,
ConsentRejected, ConsentPaused, ConsentResumed, ConsentRevoked, ConsentExpired, DataFetched).
It consumes nothing.

Runs under eventlet (`python -m services.finance worker`): import nothing of grpc here.
"""

from __future__ import annotations

from asan.finance.v1 import events_pb2  # noqa: F401  (the relay unpacks these payload types)
from services.finance.tables import runtime_tables
from services.runtime.config import database_url
from services.runtime.db import Database
from services.runtime.workers import outbox_relay_service

SERVICE = "finance"


def event_services() -> list[type]:
    return [outbox_relay_service(SERVICE, Database(database_url(SERVICE), threads=2), runtime_tables.outbox)]
