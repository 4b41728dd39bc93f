"""Appeals' event worker: relays its outbox (AppealRegistered, AppealAssigned, AppealForwarded,
AppealExtended, AppealAnswered, AppealLeftUnconsidered, AppealAnswerRated, AppealReopened,
AppealDueSoon, AppealOverdue, AppealClosed) to the broker, and completes an answer's refund
when payment reports it made (PaymentRefunded).

Runs under eventlet (`python -m services.appeals worker`): import nothing of grpc here.
"""

from __future__ import annotations

import logging
from datetime import UTC

from sqlalchemy.orm import Session

from asan.appeals.v1 import events_pb2  # noqa: F401  (the relay unpacks these payload types)
from asan.common.v1.events_pb2 import EventEnvelope
from asan.payment.v1.events_pb2 import PaymentRefunded
from services.appeals.refund_completion import complete_refund
from services.appeals.tables import runtime_tables
from services.runtime.config import database_url
from services.runtime.db import Database
from services.runtime.workers import inbox_event_handler, outbox_relay_service

SERVICE = "appeals"
log = logging.getLogger("asan.appeals.worker")


def event_services() -> list[type]:
    database_ = Database(database_url(SERVICE), threads=2)

    class AppealsRefundConsumer:
        name = "appeals_refund_consumer"
        # The inbox handler runs each event in a transaction of `self.database`.
        database = database_

        @inbox_event_handler(
            "payment",
            "PaymentRefunded",
            message_type=PaymentRefunded,
            consumer="appeals_refund_consumer",
            inbox=runtime_tables.inbox,
        )
        def on_payment_refunded(
            self, session: Session, refunded: PaymentRefunded, envelope: EventEnvelope
        ) -> None:
            """The refund an answer asked for is made; other refunds are not appeals' business."""
            at = envelope.occurred_at.ToDatetime(tzinfo=UTC) if envelope.HasField("occurred_at") else None
            row = complete_refund(session, refunded, at or refunded.refund_time.ToDatetime(tzinfo=UTC))
            if row is not None:
                log.info("answer's refund done", extra={"appeal_number": row.number})

    return [AppealsRefundConsumer, outbox_relay_service(SERVICE, database_, runtime_tables.outbox)]
