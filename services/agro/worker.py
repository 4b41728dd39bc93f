"""Agro's event worker: relays its outbox (FarmerRegistered, DeclarationSubmitted,
SubsidyApproved, SubsidyPaid, DeclarationWindowOpened, DeclarationDraftsPrepared) to the
broker, and follows its subsidies' payouts at payment: PayoutSucceeded marks a leg PAID (both
legs paid: the declaration is PAID, SubsidyPaid), PayoutFailed marks it FAILED with payment's
reason (the server's payout flow retries it when payment calls it retryable). PayoutPaid, the
deprecated name of PayoutSucceeded that payment still publishes beside it for one release, is
handled the same way: whichever comes first marks the leg, the other changes nothing.

Runs under eventlet (`python -m services.agro worker`): import nothing of grpc here.
"""

from __future__ import annotations

import logging
from datetime import UTC

from sqlalchemy.orm import Session

from asan.agro.v1 import events_pb2  # noqa: F401  (the relay unpacks these payload types)
from asan.common.v1.events_pb2 import EventEnvelope
from asan.payment.v1.events_pb2 import PayoutFailed, PayoutPaid, PayoutSucceeded
from services.agro.payout_legs import LegStatus, PayoutNews, apply_news, leg_by_request_id
from services.agro.tables import runtime_tables
from services.runtime.config import database_url
from services.runtime.db import Database
from services.runtime.workers import inbox_event_handler, outbox_relay_service

SERVICE = "agro"
CONSUMER = "agro_payout_consumer"
log = logging.getLogger("asan.agro.worker")


def _apply(session: Session, news: PayoutNews) -> None:
    """Other agencies' payouts, and payouts of no leg of ours, are not ours."""
    leg = leg_by_request_id(session, news.request_id)
    if leg is not None and apply_news(session, leg, news):
        log.info("payout leg %s", news.status.value.lower(), extra={"payout_id": news.payout_id})


def _succeeded(paid: PayoutSucceeded | PayoutPaid) -> PayoutNews:
    return PayoutNews(
        request_id=paid.create_request_id,
        payout_id=paid.payout_id,
        attempt=paid.attempt,
        status=LegStatus.PAID,
        at=paid.paid_time.ToDatetime(tzinfo=UTC),
    )


def event_services() -> list[type]:
    database_ = Database(database_url(SERVICE), threads=2)

    class AgroPayoutConsumer:
        name = CONSUMER
        # The inbox handler runs each event in a transaction of `self.database`.
        database = database_

        @inbox_event_handler(
            "payment",
            "PayoutSucceeded",
            message_type=PayoutSucceeded,
            consumer=CONSUMER,
            inbox=runtime_tables.inbox,
        )
        def on_payout_succeeded(
            self, session: Session, paid: PayoutSucceeded, envelope: EventEnvelope
        ) -> None:
            _apply(session, _succeeded(paid))

        # Remove with payment's PayoutPaid (asan/payment/v1/events.proto).
        @inbox_event_handler(
            "payment", "PayoutPaid", message_type=PayoutPaid, consumer=CONSUMER, inbox=runtime_tables.inbox
        )
        def on_payout_paid(self, session: Session, paid: PayoutPaid, envelope: EventEnvelope) -> None:
            _apply(session, _succeeded(paid))

        @inbox_event_handler(
            "payment",
            "PayoutFailed",
            message_type=PayoutFailed,
            consumer=CONSUMER,
            inbox=runtime_tables.inbox,
        )
        def on_payout_failed(self, session: Session, failed: PayoutFailed, envelope: EventEnvelope) -> None:
            news = PayoutNews(
                request_id=failed.create_request_id,
                payout_id=failed.payout_id,
                attempt=failed.attempt,
                status=LegStatus.FAILED,
                at=failed.fail_time.ToDatetime(tzinfo=UTC),
                failure_reason=failed.failure_reason,
                retryable=failed.retryable,
            )
            _apply(session, news)

    return [AgroPayoutConsumer, outbox_relay_service(SERVICE, database_, runtime_tables.outbox)]
