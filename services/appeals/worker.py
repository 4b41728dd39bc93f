"""Appeals' event worker: relays its outbox (AppealRegistered, AppealAssigned, AppealForwarded,
AppealExtended, AppealAnswered, AppealLeftUnconsidered, AppealAnswerRated, AppealReopened,
AppealDueSoon, AppealOverdue, AppealClosed) to the broker. It consumes nothing yet.

Runs under eventlet (`python -m services.appeals worker`): import nothing of grpc here.
"""

from __future__ import annotations

from asan.appeals.v1 import events_pb2  # noqa: F401  (the relay unpacks these payload types)
from services.appeals.tables import runtime_tables
from services.runtime.config import database_url
from services.runtime.db import Database
from services.runtime.workers import outbox_relay_service

SERVICE = "appeals"


def event_services() -> list[type]:
    database = Database(database_url(SERVICE), threads=2)
    return [outbox_relay_service(SERVICE, database, runtime_tables.outbox)]
