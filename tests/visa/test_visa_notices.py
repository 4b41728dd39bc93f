"""ASAN Viza tells its applicants by e-mail: the application received and paid, each decision
(the e-visa issued, or refused with the reason's text), and the stay ending 3 days ahead after
the entry. A stand-in for myGov on the notices exchange receives exactly these notices, the
mail drop exactly these mails, each once, however often the triggering events come again
(memory:// in one worker process, RabbitMQ across processes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from asan.visa.v1 import visa_pb2, visa_service_pb2
from services.payment.tables import runtime_tables as payment_runtime_tables
from services.runtime.db import utcnow
from services.runtime.notices import Text
from services.visa import notices
from services.visa.tables import ApplicantRow, runtime_tables
from tests.payment.builders import new_request_id
from tests.support.notice_consumer import Receiver
from tests.support.notice_mail import RecordingDrop
from tests.support.ports import free_ports
from tests.support.servers import RunningService
from tests.support.workers import WorkerProcess, delete_broker_entities, relay_all_again, wait_until
from tests.visa.builders import (
    applicant,
    application,
    border_officer,
    create_request,
    officer,
    pay,
    visa_stub,
)
from tools.maildrop import start

VISA_QUEUES = [
    "evt-payment-PaymentSucceeded--visa_fee_consumer.on_payment_succeeded",
    "evt-payment-PaymentExpired--visa_fee_consumer.on_payment_expired",
]
PRODUCERS = ["services.payment.worker:event_services", "services.visa.worker:event_services"]
CONSUMER = "tests.support.notice_consumer:services"
EMAIL = "anna.schneider@example.de"


@pytest.fixture
def receiver(new_database_url: Callable[[str, str], str], amqp_uri: str) -> Iterator[Receiver]:
    receiver = Receiver(new_database_url("sqlite", "mygov"), "visa.*")
    yield receiver
    receiver.database.close()
    if amqp_uri != "memory://":
        delete_broker_entities(amqp_uri, [receiver.queue, *VISA_QUEUES], [receiver.exchange])


@pytest.fixture
def drop(tmp_path: Path) -> Iterator[tuple[RecordingDrop, int]]:
    mail_drop = RecordingDrop(tmp_path / "mail")
    (port,) = free_ports(1)
    controller: Controller = start(mail_drop, "127.0.0.1", port)
    yield mail_drop, port
    controller.stop()


def kinds(receiver: Receiver) -> list[str]:
    return [str(row["kind"]) for row in receiver.received()]


async def test_an_applicant_is_told_of_receipt_decisions_and_the_stay_ending_once_each(
    payment: RunningService,
    visa: RunningService,
    amqp_uri: str,
    receiver: Receiver,
    drop: tuple[RecordingDrop, int],
    workers: Callable[..., WorkerProcess],
) -> None:
    mail_drop, smtp_port = drop
    env = {
        "PAYMENT_DATABASE_URL": payment.database_url,
        "VISA_DATABASE_URL": visa.database_url,
        "VISA_SANDBOX_DECISIONS": "false",
        "AMQP_URI": amqp_uri,
        "ASAN_EVENT_MAX_WORKERS": "2",
        "ASAN_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        **receiver.env(),
    }
    if amqp_uri == "memory://":
        consuming = workers([*PRODUCERS, CONSUMER], env)
    else:
        workers([CONSUMER], env)
        consuming = workers([PRODUCERS[1]], env)  # visa's queues before payment publishes
        workers([PRODUCERS[0]], env)

    stub = visa_stub(visa)
    # Two people, one address: the receipt is told to the address once.
    family = application(applicant("C01X00T47"), applicant("C01X00T48", given_names="Jonas"))
    created = await stub.CreateApplication(create_request(family))
    number = created.application.application_number
    await pay(payment, created)
    wait_until(lambda: kinds(receiver) == ["visa.application_received"], timeout=30, what="the receipt told")

    await stub.ApproveApplicant(
        visa_service_pb2.ApproveApplicantRequest(
            request_id=new_request_id(), application_number=number, passport_number="C01X00T47"
        ),
        metadata=officer(),
    )
    decided = await stub.RefuseApplicant(
        visa_service_pb2.RefuseApplicantRequest(
            request_id=new_request_id(),
            application_number=number,
            passport_number="C01X00T48",
            refusal_reason=visa_pb2.REFUSAL_REASON_INVALID_DOCUMENT,
        ),
        metadata=officer(),
    )
    visa_number = decided.applicants[0].evisa.visa_number
    await stub.RecordEntry(
        visa_service_pb2.RecordEntryRequest(
            request_id=new_request_id(), visa_number=visa_number, passport_number="C01X00T47"
        ),
        metadata=border_officer(),
    )
    # 27 days later (the entry moved back): the 30-day stay's last day is the day after tomorrow.
    entered = utcnow() - timedelta(days=27)
    visa.server.database.run_sync(
        lambda s: s.execute(
            update(ApplicantRow).where(ApplicantRow.visa_number == visa_number).values(entry_at=entered)
        )
    )
    assert visa.server.database.run_sync(lambda s: notices.tell_stays_ending(s, utcnow())) == 1
    assert (
        visa.server.database.run_sync(lambda s: notices.tell_stays_ending(s, utcnow())) == 0
    )  # the next sweep

    expected = ["visa.application_received", "visa.evisa_issued", "visa.evisa_refused", "visa.stay_ending"]
    wait_until(lambda: len(receiver.received()) >= 4, timeout=30, what="four notices received")
    first = receiver.received()
    assert kinds(receiver) == expected
    assert {row["addressee"] for row in first} == {EMAIL}
    assert {row["resource_name"] for row in first} == {f"applications/{number}"}
    assert first[1]["title_en"] == f"E-visa issued: {visa_number}"
    assert first[3]["title_en"].startswith("Your stay in Azerbaijan ends on ")

    wait_until(lambda: len(mail_drop.mails()) == 4, timeout=30, what="four mails")
    by_kind = {mail["X-ASAN-Notice-Kind"]: mail for mail in mail_drop.mails()}
    assert sorted(by_kind) == expected
    assert {mail["To"] for mail in by_kind.values()} == {EMAIL}
    refusal = by_kind["visa.evisa_refused"].get_content()
    assert "Reason: the passport or the data given are not acceptable." in refusal
    assert "Причина: паспорт или указанные данные не могут быть приняты." in refusal
    assert f"/v1/applications/{number}/evisaDocument:lookup" in by_kind["visa.evisa_issued"].get_content()

    # PaymentSucceeded delivered again: visa's inbox skips it, and no notice comes of it. Visa's
    # outbox relayed again: the same notices come with the same ids (a consumer drops them), and
    # nobody is mailed twice.
    payment_outbox, visa_outbox = payment_runtime_tables.outbox, runtime_tables.outbox
    relay_all_again(payment.server.database, payment_outbox)
    wait_until(
        lambda: "applied before, skipped" in consuming.output(), timeout=30, what="the redelivery consumed"
    )
    relay_all_again(visa.server.database, visa_outbox)
    wait_until(lambda: len(receiver.received()) >= 8, timeout=30, what="the notices delivered again")
    again = receiver.received()
    assert [row["notice_id"] for row in again[4:]] == [row["notice_id"] for row in first]
    assert len(again) == 8
    assert len(mail_drop.mails()) == 4
    assert len(mail_drop.transmissions) == 4


def test_the_stay_ends_30_days_from_the_entry_day_included_and_never_after_the_visa() -> None:
    assert notices.stay_last_day(date(2026, 3, 1), date(2026, 5, 29)) == date(2026, 3, 30)
    assert notices.stay_last_day(date(2026, 5, 20), date(2026, 5, 29)) == date(2026, 5, 29)


@pytest.mark.parametrize("reason", [v.name for v in visa_pb2.RefusalReason.DESCRIPTOR.values if v.number])
def test_every_refusal_reason_has_its_text_in_az_en_and_ru(reason: str) -> None:
    text: Text = notices.REFUSAL_REASONS[reason.removeprefix("REFUSAL_REASON_")]
    assert text.problems() == []
