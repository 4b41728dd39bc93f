"""The whole e-visa flow over real gRPC with payment running: apply, pay with the sandbox card
and the confirmation secret, PaymentSucceeded carried by the event workers, approve, the PDF,
the border check and the single entry. On memory:// (one worker process hosting payment's and
visa's workers, as `make run` does) and on RabbitMQ (separate processes, consumer first)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pypdf
import zxingcpp
from PIL import Image
from sqlalchemy import select, update

from asan.visa.v1 import events_pb2, visa_pb2, visa_service_pb2
from services.payment.tables import PaymentRow
from services.payment.tables import runtime_tables as payment_runtime_tables
from services.runtime.config import var_dir
from services.runtime.db import utcnow
from services.visa.tables import ApplicationRow
from tests.payment.builders import new_request_id
from tests.support.servers import RunningService
from tests.support.waiting import eventually
from tests.support.workers import WorkerProcess, delete_broker_entities, relay_all_again, wait_until
from tests.visa.builders import (
    applicant,
    application,
    border_officer,
    create_request,
    in_database,
    officer,
    outbox_events,
    pay,
    rejected,
    visa_stub,
)

# The durable queues visa's consumer declares on the shared broker; removed after each test.
VISA_QUEUES = [
    "evt-payment-PaymentSucceeded--visa_fee_consumer.on_payment_succeeded",
    "evt-payment-PaymentExpired--visa_fee_consumer.on_payment_expired",
]
WORKERS = ["services.payment.worker:event_services", "services.visa.worker:event_services"]


def start_workers(
    workers: Callable[..., WorkerProcess],
    payment: RunningService,
    visa: RunningService,
    amqp_uri: str,
    tmp_path: Path,
    sandbox: bool = False,
) -> WorkerProcess:
    env = {
        "PAYMENT_DATABASE_URL": payment.database_url,
        "VISA_DATABASE_URL": visa.database_url,
        "VISA_SIGNING_KEY_FILE": str(visa_key_file()),
        "VISA_SANDBOX_DECISIONS": "true" if sandbox else "false",
        "AMQP_URI": amqp_uri,
        "ASAN_EVENT_MAX_WORKERS": "2",
    }
    if amqp_uri == "memory://":
        return workers(WORKERS, env)
    consuming = workers([WORKERS[1]], env)  # the consumer's queue first
    workers([WORKERS[0]], env)
    return consuming


def visa_key_file() -> Path:
    return var_dir() / "keys" / "visa_signing_ed25519.pem"


def status_of(visa: RunningService, number: str) -> str:
    return in_database(
        visa, lambda s: s.scalars(select(ApplicationRow.status).where(ApplicationRow.number == number)).one()
    )


async def test_apply_pay_approve_download_verify_and_enter(
    payment: RunningService,
    visa: RunningService,
    amqp_uri: str,
    workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    stub = visa_stub(visa)
    consuming = start_workers(workers, payment, visa, amqp_uri, tmp_path)
    try:
        family = application(applicant("C01X00T47"), applicant("C01X00T48", given_names="Jonas"))
        created = await stub.CreateApplication(create_request(family))
        number = created.application.application_number
        assert created.application.status == visa_pb2.APPLICATION_STATUS_AWAITING_PAYMENT
        assert (created.fee.minor_units, created.fee.currency_code) == (2 * 6000, "USD")  # urgent, two people
        assert created.application.payment_id and created.payment_confirmation_secret
        lead = created.application.applicants[0]
        assert lead.normalized_name == "SCHNEIDER ANNA MARIA"

        await pay(payment, created)
        wait_until(lambda: status_of(visa, number) == "SUBMITTED", timeout=30, what="application submitted")
        seen = await stub.GetApplicationStatus(
            visa_service_pb2.GetApplicationStatusRequest(
                application_number=number, passport_number="C01X00T48"
            )
        )
        assert seen.status == visa_pb2.APPLICATION_STATUS_SUBMITTED
        assert seen.due_time.ToSeconds() - seen.submit_time.ToSeconds() == 3 * 3600
        [submitted] = outbox_events(visa, events_pb2.VisaApplicationSubmitted)
        assert (submitted.application_number, submitted.applicant_count) == (number, 2)

        for passport in ("C01X00T47", "C01X00T48"):
            decided = await stub.ApproveApplicant(
                visa_service_pb2.ApproveApplicantRequest(
                    request_id=new_request_id(), application_number=number, passport_number=passport
                ),
                metadata=officer(),
            )
        assert decided.status == visa_pb2.APPLICATION_STATUS_DECIDED
        visas = [a.evisa for a in decided.applicants]
        assert len({v.visa_number for v in visas}) == 2
        assert all((v.stay_days, v.entries) == (30, 1) for v in visas)
        assert len(outbox_events(visa, events_pb2.VisaIssued)) == 2
        evisa = visas[0]

        document = await stub.GetEVisaDocument(
            visa_service_pb2.GetEVisaDocumentRequest(application_number=number, passport_number="C01X00T47")
        )
        assert document.content_type == "application/pdf"
        assert document.data.startswith(b"%PDF-")
        pdf = pypdf.PdfReader(io.BytesIO(document.data))
        text = pdf.pages[0].extract_text()
        assert evisa.visa_number in text and "C01X00T47" in text
        [image] = pdf.pages[0].images
        # QR codes only: read for every format, the code's own modules were once read as a
        # second, spurious barcode.
        [qr] = zxingcpp.read_barcodes(
            Image.open(io.BytesIO(image.data)), formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
        )
        assert qr.text == evisa.verification_code

        border = border_officer()
        by_code = await stub.VerifyVisa(
            visa_service_pb2.VerifyVisaRequest(
                request_id=new_request_id(), verification_code=qr.text, passport_number="C01X00T47"
            ),
            metadata=border,
        )
        assert by_code.result == visa_pb2.VERIFICATION_RESULT_VALID
        wrong = await stub.VerifyVisa(
            visa_service_pb2.VerifyVisaRequest(
                request_id=new_request_id(), visa_number=evisa.visa_number, passport_number="C01X00T48"
            ),
            metadata=border,
        )
        assert wrong.result == visa_pb2.VERIFICATION_RESULT_WRONG_PASSPORT
        entered = await stub.RecordEntry(
            visa_service_pb2.RecordEntryRequest(
                request_id=new_request_id(), visa_number=evisa.visa_number, passport_number="C01X00T47"
            ),
            metadata=border,
        )
        assert entered.HasField("entry_time")
        used = await stub.VerifyVisa(
            visa_service_pb2.VerifyVisaRequest(
                request_id=new_request_id(), visa_number=evisa.visa_number, passport_number="C01X00T47"
            ),
            metadata=border,
        )
        assert used.result == visa_pb2.VERIFICATION_RESULT_ALREADY_USED
        second_entry = await rejected(
            stub.RecordEntry(
                visa_service_pb2.RecordEntryRequest(
                    request_id=new_request_id(), visa_number=evisa.visa_number, passport_number="C01X00T47"
                ),
                metadata=border,
            )
        )
        assert (second_entry.code, second_entry.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "VISA_ALREADY_USED",
        )

        # PaymentSucceeded delivered again (the relay re-publishes what it had not marked):
        # the visa's inbox absorbs it and nothing changes.
        outbox = payment_runtime_tables.outbox
        relay_all_again(payment.server.database, outbox)
        wait_until(
            lambda: "applied before, skipped" in consuming.output(),
            timeout=30,
            what="the redelivery consumed",
        )
        assert status_of(visa, number) == "DECIDED"
        assert len(outbox_events(visa, events_pb2.VisaApplicationSubmitted)) == 1
    finally:
        if amqp_uri != "memory://":
            delete_broker_entities(amqp_uri, VISA_QUEUES, [])


async def test_an_application_whose_fee_expires_unpaid_expires_too(
    payment: RunningService,
    visa: RunningService,
    amqp_uri: str,
    workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    start_workers(workers, payment, visa, amqp_uri, tmp_path)
    try:
        created = await visa_stub(visa).CreateApplication(create_request(application()))
        number = created.application.application_number
        payment.server.database.run_sync(
            lambda s: s.execute(
                update(PaymentRow)
                .where(PaymentRow.id == created.application.payment_id)
                .values(expire_at=utcnow() - timedelta(seconds=1))
            )
        )
        await eventually(
            lambda: status_of(visa, number) == "EXPIRED",
            within=30,
            what="application expired",
        )
        seen = await visa_stub(visa).GetApplicationStatus(
            visa_service_pb2.GetApplicationStatusRequest(
                application_number=number, passport_number="C01X00T47"
            )
        )
        assert seen.status == visa_pb2.APPLICATION_STATUS_EXPIRED
    finally:
        if amqp_uri != "memory://":
            delete_broker_entities(amqp_uri, VISA_QUEUES, [])
