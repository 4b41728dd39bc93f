"""Visa's event worker: relays its outbox (VisaApplicationSubmitted, VisaIssued, VisaRefused,
VisaApplicationOverdue, and its notices to the notices exchange), mails its notices to the
applicants (services.runtime.mail), submits an application when payment reports its fee paid, and
expires it when its payment expired unpaid.

Runs under eventlet (`python -m services.visa worker`): import nothing of grpc here.
"""

from __future__ import annotations

import logging
from datetime import UTC

from sqlalchemy.orm import Session

from asan.common.v1.events_pb2 import EventEnvelope
from asan.payment.v1.events_pb2 import PaymentExpired, PaymentSucceeded
from asan.visa.v1 import events_pb2  # noqa: F401  (the relay unpacks these payload types)
from services.runtime.config import database_url, env_bool
from services.runtime.db import Database
from services.runtime.workers import inbox_event_handler, notice_mailer_service, outbox_relay_service
from services.visa import decisions, queries
from services.visa.signing import VisaSigner
from services.visa.tables import notice_tables, runtime_tables

SERVICE = "visa"
log = logging.getLogger("asan.visa.worker")


def event_services() -> list[type]:
    database_ = Database(database_url(SERVICE), threads=2)
    signer = VisaSigner.from_env()
    sandbox = env_bool("VISA_SANDBOX_DECISIONS", False)

    class VisaFeeConsumer:
        name = "visa_fee_consumer"
        # The inbox handler runs each event in a transaction of `self.database`.
        database = database_

        @inbox_event_handler(
            "payment",
            "PaymentSucceeded",
            message_type=PaymentSucceeded,
            consumer="visa_fee_consumer",
            inbox=runtime_tables.inbox,
        )
        def on_payment_succeeded(
            self, session: Session, paid: PaymentSucceeded, envelope: EventEnvelope
        ) -> None:
            """Submits the application the payment was for; other services' payments are not ours."""
            application = queries.application_by_payment(session, paid.payment_id)
            if application is None:
                return
            if decisions.submit(
                session,
                application,
                paid.paid_time.ToDatetime(tzinfo=UTC),
                sandbox=sandbox,
                signer=signer,
            ):
                log.info("application submitted", extra={"application_number": application.number})

        @inbox_event_handler(
            "payment",
            "PaymentExpired",
            message_type=PaymentExpired,
            consumer="visa_fee_consumer",
            inbox=runtime_tables.inbox,
        )
        def on_payment_expired(
            self, session: Session, expired: PaymentExpired, envelope: EventEnvelope
        ) -> None:
            """An application whose fee was not paid in time leaves the queue of awaited payments."""
            application = queries.application_by_payment(session, expired.payment_id)
            if application is not None and decisions.expire(application):
                log.info("application expired unpaid", extra={"application_number": application.number})

    return [
        VisaFeeConsumer,
        outbox_relay_service(SERVICE, database_, runtime_tables.outbox),
        notice_mailer_service(SERVICE, database_, notice_tables.notices),
    ]
