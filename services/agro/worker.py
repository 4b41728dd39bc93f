"""Agro's event worker: relays its outbox (FarmerRegistered, DeclarationSubmitted,
SubsidyApproved, DeclarationWindowOpened, DeclarationDraftsPrepared; SubsidyPaid once payouts
exist) to the broker.

Runs under eventlet (`python -m services.agro worker`): import nothing of grpc here.
"""

from __future__ import annotations

from asan.agro.v1 import events_pb2  # noqa: F401  (the relay unpacks these payload types)
from services.agro.tables import runtime_tables
from services.runtime.config import database_url
from services.runtime.db import Database
from services.runtime.workers import outbox_relay_service

SERVICE = "agro"


def event_services() -> list[type]:
    database = Database(database_url(SERVICE), threads=2)
    return [outbox_relay_service(SERVICE, database, runtime_tables.outbox)]
