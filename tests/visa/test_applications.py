"""Applying, reviewing and checking visas over real gRPC with payment running: every rule's
answer as a client reads it, who sees what, the fee's payment made once, payment being down,
the officers' queue, the reference tables, the overdue sweeper and the metrics."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import Callable
from datetime import date, timedelta

import grpc
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from asan.common.v1.paging_pb2 import PageCursor
from asan.visa.v1 import events_pb2, visa_pb2, visa_service_pb2
from services.payment.service import definition as payment_definition
from services.payment.tables import Base as PaymentBase
from services.payment.tables import PaymentRow
from services.runtime.db import utcnow
from services.runtime.paging import encode_page_token, filter_fingerprint
from services.visa import decisions, queries
from services.visa.signing import VisaSigner
from services.visa.tables import ApplicantRow, ApplicationRow, runtime_tables
from services.visa.tables import Base as VisaBase
from tests.payment.builders import new_request_id, places_keeping, shared_auth
from tests.support import servers
from tests.support.ports import free_port
from tests.support.servers import RunningService, running_service
from tests.visa.builders import (
    applicant,
    application,
    baku_today,
    bearer,
    border_officer,
    create_request,
    in_database,
    officer,
    outbox_events,
    pay,
    rejected,
    visa_service,
    visa_stub,
)


async def _apply(
    visa: RunningService, app: visa_pb2.Application | None = None
) -> visa_service_pb2.CreateApplicationResponse:
    created: visa_service_pb2.CreateApplicationResponse = await visa_stub(visa).CreateApplication(
        create_request(app or application())
    )
    return created


def _submit(visa: RunningService, number: str, *, sandbox: bool = False) -> None:
    """What the worker does on PaymentSucceeded, run here directly."""
    signer = VisaSigner.from_env()

    def submit(session: Session) -> None:
        row = queries.application_by_number(session, number, for_update=True)
        assert row is not None
        assert decisions.submit(session, row, utcnow(), sandbox=sandbox, signer=signer)

    in_database(visa, submit)


def _approve(
    number: str, passport: str, request_id: str | None = None
) -> visa_service_pb2.ApproveApplicantRequest:
    return visa_service_pb2.ApproveApplicantRequest(
        request_id=request_id or new_request_id(), application_number=number, passport_number=passport
    )


def _status(number: str, passport: str) -> visa_service_pb2.GetApplicationStatusRequest:
    return visa_service_pb2.GetApplicationStatusRequest(application_number=number, passport_number=passport)


def _count(service: RunningService, what: type) -> int:
    return in_database(service, lambda s: s.execute(select(func.count()).select_from(what)).scalar_one())


# --- Applying ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 10])
async def test_one_to_ten_people_apply_under_one_payment_of_their_fees(
    payment: RunningService, visa: RunningService, size: int
) -> None:
    people = [applicant(f"C01X{n:05d}") for n in range(size)]
    created = await _apply(
        visa, application(*people, speed=visa_pb2.SPEED_STANDARD, arrival=baku_today() + timedelta(days=20))
    )
    assert len(created.application.applicants) == size
    assert (created.fee.minor_units, created.fee.currency_code) == (2000 * size, "USD")
    [paid_for] = in_database(payment, lambda s: list(s.scalars(select(PaymentRow))))
    assert (paid_for.amount_minor, paid_for.quantity, paid_for.reference) == (
        2000 * size,
        size,
        created.application.application_number,
    )
    assert (paid_for.payer_passport_country, paid_for.payer_passport_number) == ("DEU", "C01X00000")


async def test_eleven_people_are_refused_with_nothing_written(
    payment: RunningService, visa: RunningService
) -> None:
    people = [applicant(f"C01X{n:05d}") for n in range(11)]
    rejection = await rejected(visa_stub(visa).CreateApplication(create_request(application(*people))))
    assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT
    assert rejection.violations == {"application.applicants": "TOO_MANY"}
    assert _count(visa, ApplicationRow) == 0 and _count(payment, PaymentRow) == 0


async def test_every_broken_rule_is_its_own_field_violation(visa: RunningService) -> None:
    today = baku_today()
    app = application(
        applicant("C01X00T47", nationality="TUR"),
        applicant("C01X00T48", passport_expiry=today + timedelta(days=30)),
        applicant("c01 x", email="nope"),
        arrival=today + timedelta(days=1),
        speed=visa_pb2.SPEED_STANDARD,
    )
    app.applicants[1].date_of_birth.month = 13
    rejection = await rejected(visa_stub(visa).CreateApplication(create_request(app)))
    assert rejection.violations == {
        "application.arrival_date": "ARRIVAL_TOO_SOON",
        "application.applicants[0].nationality": "VISA_NOT_REQUIRED",
        "application.applicants[1].date_of_birth": "FORMAT",
        "application.applicants[1].passport_expiry_date": "PASSPORT_EXPIRES_TOO_SOON",
        "application.applicants[2].passport_number": "FORMAT",
        "application.applicants[2].email": "FORMAT",
    }
    assert "90 days" in next(
        v.description for v in rejection.field_violations if v.field.endswith("[0].nationality")
    )


async def test_an_enum_number_the_contract_does_not_define_is_out_of_range_not_missing(
    visa: RunningService,
) -> None:
    app = application(
        applicant(sex=visa_pb2.Sex.ValueType(99)),
        speed=visa_pb2.Speed.ValueType(7),
        purpose=visa_pb2.PURPOSE_UNSPECIFIED,
    )
    rejection = await rejected(visa_stub(visa).CreateApplication(create_request(app)))
    # One violation a field: the number is not also reported as a missing value.
    assert rejection.violated_fields == [
        "application.applicants[0].sex",
        "application.speed",
        "application.purpose",
    ]
    assert rejection.violations == {
        "application.applicants[0].sex": "OUT_OF_RANGE",
        "application.speed": "OUT_OF_RANGE",
        "application.purpose": "REQUIRED",
    }
    refused = await rejected(
        visa_stub(visa).RefuseApplicant(
            visa_service_pb2.RefuseApplicantRequest(
                request_id=new_request_id(),
                application_number="EV-2026-7K3P9QXM",
                passport_number="C01X00T47",
                refusal_reason=visa_pb2.RefusalReason.ValueType(42),
            ),
            metadata=officer(),
        )
    )
    assert refused.violations == {"refusal_reason": "OUT_OF_RANGE"}
    listed = await rejected(
        visa_stub(visa).ListApplications(
            visa_service_pb2.ListApplicationsRequest(status=visa_pb2.ApplicationStatus.ValueType(99)),
            metadata=officer(),
        )
    )
    assert listed.violations == {"status": "OUT_OF_RANGE"}


async def test_a_retried_create_returns_the_same_application_and_makes_one_payment(
    payment: RunningService, visa: RunningService
) -> None:
    request = create_request(application())
    first = await visa_stub(visa).CreateApplication(request)
    again = await visa_stub(visa).CreateApplication(request)
    assert again == first
    assert _count(payment, PaymentRow) == 1
    changed = create_request(application(applicant("C01X99999")), request_id=request.request_id)
    reused = await rejected(visa_stub(visa).CreateApplication(changed))
    assert reused.reason == "REQUEST_ID_REUSED"


async def test_a_retry_after_visa_lost_its_commit_gets_the_same_payment_from_payment(
    payment: RunningService, visa: RunningService
) -> None:
    request = create_request(application())
    first = await visa_stub(visa).CreateApplication(request)

    def forget(session: Session) -> None:  # as if visa had crashed after payment answered
        session.execute(delete(ApplicantRow))
        session.execute(delete(ApplicationRow))
        session.execute(delete(runtime_tables.idempotency_keys))

    in_database(visa, forget)
    again = await visa_stub(visa).CreateApplication(request)
    assert again.application.application_number == first.application.application_number
    assert again.application.payment_id == first.application.payment_id
    assert again.payment_confirmation_secret == first.payment_confirmation_secret
    assert _count(payment, PaymentRow) == 1


async def test_payment_down_at_apply_time_is_unavailable_writes_nothing_and_a_retry_succeeds(
    database_backend: str, new_database_url: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASAN_CLIENT_DEADLINE_SECONDS", "3")
    port = free_port()
    async with visa_service(
        new_database_url(database_backend, "visa"), f"127.0.0.1:{port}", monkeypatch
    ) as visa:
        request = create_request(application())
        down = await rejected(visa_stub(visa).CreateApplication(request))
        assert down.code == grpc.StatusCode.UNAVAILABLE
        assert down.reason == "PAYMENT_UNAVAILABLE"
        assert "retry" in down.status.message.lower()
        assert _count(visa, ApplicationRow) == 0
        assert (
            in_database(
                visa,
                lambda s: s.execute(
                    select(func.count()).select_from(runtime_tables.idempotency_keys)
                ).scalar(),
            )
            == 0
        )

        # Payment comes up on the address visa calls; the applicant retries the same request.
        payment_url = new_database_url(database_backend, "payment")
        config = dataclasses.replace(
            servers.test_config(payment_definition, payment_url), auth=shared_auth(), grpc_port=port
        )
        async with running_service(payment_definition, payment_url, config) as payment:
            # Visa's channel may still be in its reconnect backoff for a moment: the applicant
            # retries, always with the same request_id, until payment answers.
            deadline = time.monotonic() + 30
            while True:
                try:
                    created = await visa_stub(visa).CreateApplication(request)
                    break
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            assert created.application.status == visa_pb2.APPLICATION_STATUS_AWAITING_PAYMENT
            assert _count(payment, PaymentRow) == 1
            assert _count(visa, ApplicationRow) == 1


# --- What an applicant sees ---------------------------------------------------------------------


async def test_an_applicant_sees_their_application_by_number_and_any_of_its_passports(
    visa: RunningService,
) -> None:
    created = await _apply(visa, application(applicant("C01X00T47"), applicant("C01X00T48")))
    number = created.application.application_number
    for passport in ("C01X00T47", "C01X00T48"):
        seen = await visa_stub(visa).GetApplicationStatus(_status(number, passport))
        assert seen.application_number == number
    other = await _apply(visa, application(applicant("D99Y00001")))
    for wrong in (
        _status(number, "D99Y00001"),
        _status(other.application.application_number, "C01X00T47"),
        _status("EV-2026-00000000", "C01X00T47"),
    ):
        rejection = await rejected(visa_stub(visa).GetApplicationStatus(wrong))
        assert (rejection.code, rejection.reason) == (grpc.StatusCode.NOT_FOUND, "APPLICATION_NOT_FOUND")
        assert "C01X" not in rejection.readable_text() and "D99Y" not in rejection.readable_text()


async def test_there_is_no_document_before_approval(visa: RunningService) -> None:
    created = await _apply(visa)
    rejection = await rejected(
        visa_stub(visa).GetEVisaDocument(
            visa_service_pb2.GetEVisaDocumentRequest(
                application_number=created.application.application_number, passport_number="C01X00T47"
            )
        )
    )
    assert (rejection.code, rejection.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "EVISA_NOT_ISSUED")


# --- Review ------------------------------------------------------------------------------------


async def test_an_unpaid_application_cannot_be_decided(visa: RunningService) -> None:
    created = await _apply(visa)
    rejection = await rejected(
        visa_stub(visa).ApproveApplicant(
            _approve(created.application.application_number, "C01X00T47"), metadata=officer()
        )
    )
    assert (rejection.code, rejection.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "APPLICATION_STATE_CONFLICT",
    )


async def test_each_applicant_gets_their_own_decision_once(visa: RunningService) -> None:
    created = await _apply(visa, application(applicant("C01X00T47"), applicant("C01X00T48")))
    number = created.application.application_number
    _submit(visa, number)
    stub = visa_stub(visa)
    refused = await stub.RefuseApplicant(
        visa_service_pb2.RefuseApplicantRequest(
            request_id=new_request_id(),
            application_number=number,
            passport_number="C01X00T48",
            refusal_reason=visa_pb2.REFUSAL_REASON_PURPOSE_NOT_ESTABLISHED,
        ),
        metadata=officer(),
    )
    assert refused.status == visa_pb2.APPLICATION_STATUS_SUBMITTED  # one still undecided
    request = _approve(number, "C01X00T47")
    approved = await stub.ApproveApplicant(request, metadata=officer())
    assert approved.status == visa_pb2.APPLICATION_STATUS_DECIDED
    assert [a.decision for a in approved.applicants] == [
        visa_pb2.DECISION_APPROVED,
        visa_pb2.DECISION_REFUSED,
    ]
    assert await stub.ApproveApplicant(request, metadata=officer()) == approved  # a replay
    again = await rejected(stub.ApproveApplicant(_approve(number, "C01X00T48"), metadata=officer()))
    assert again.code == grpc.StatusCode.FAILED_PRECONDITION
    [refusal] = outbox_events(visa, events_pb2.VisaRefused)
    assert refusal.refusal_reason == visa_pb2.REFUSAL_REASON_PURPOSE_NOT_ESTABLISHED
    assert len(outbox_events(visa, events_pb2.VisaIssued)) == 1


async def test_only_dmx_officers_review(visa: RunningService) -> None:
    created = await _apply(visa)
    number = created.application.application_number
    for caller in (bearer("citizen", "5ZK3T9P"), bearer("officer", "din-4", "DIN"), border_officer()):
        rejection = await rejected(
            visa_stub(visa).ApproveApplicant(_approve(number, "C01X00T47"), metadata=caller)
        )
        assert rejection.code == grpc.StatusCode.PERMISSION_DENIED
    no_token = await rejected(visa_stub(visa).ListApplications(visa_service_pb2.ListApplicationsRequest()))
    assert no_token.code == grpc.StatusCode.UNAUTHENTICATED


async def test_officers_walk_the_queue_earliest_due_first_in_pages(visa: RunningService) -> None:
    numbers = []
    for n in range(5):
        created = await _apply(visa, application(applicant(f"Q0000{n:04d}")))
        numbers.append(created.application.application_number)
    for number in reversed(numbers[:3]):  # submitted last-first: the first applied is due last
        _submit(visa, number)
    stub = visa_stub(visa)
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListApplications(
            visa_service_pb2.ListApplicationsRequest(
                page_size=2, page_token=token, status=visa_pb2.APPLICATION_STATUS_SUBMITTED
            ),
            metadata=officer(),
        )
        seen += [a.application_number for a in page.applications]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(numbers[:3]))
    other_filter = await rejected(
        stub.ListApplications(
            visa_service_pb2.ListApplicationsRequest(
                page_size=2, page_token=_first_token(), speed=visa_pb2.SPEED_STANDARD
            ),
            metadata=officer(),
        )
    )
    assert other_filter.violated_fields == ["page_token"]
    awaiting = await stub.ListApplications(
        visa_service_pb2.ListApplicationsRequest(status=visa_pb2.APPLICATION_STATUS_AWAITING_PAYMENT),
        metadata=officer(),
    )
    assert [a.application_number for a in awaiting.applications] == numbers[3:]


async def test_a_page_token_whose_instant_was_altered_is_refused_on_its_field(visa: RunningService) -> None:
    for n in range(2):
        await _apply(visa, application(applicant(f"Q0000{n:04d}")))
    stub = visa_stub(visa)
    token = (
        await stub.ListApplications(visa_service_pb2.ListApplicationsRequest(page_size=1), metadata=officer())
    ).next_page_token
    cursor = PageCursor.FromString(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for altered_key in ("yesterday", "2026-01-01T00:00:00"):  # not an instant; an instant without a zone
        cursor.last_sort_key = altered_key
        altered = base64.urlsafe_b64encode(cursor.SerializeToString()).decode().rstrip("=")
        rejection = await rejected(
            stub.ListApplications(
                visa_service_pb2.ListApplicationsRequest(page_size=1, page_token=altered), metadata=officer()
            )
        )
        assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, altered_key
        assert rejection.violated_fields == ["page_token"], altered_key


def _first_token() -> str:
    return encode_page_token("2026-01-01T00:00:00+00:00", "x", filter_fingerprint("something else"))


# --- Automatic checks ------------------------------------------------------------------------------


async def test_watchlist_and_sandbox_passports_are_decided_without_an_officer(visa: RunningService) -> None:
    created = await _apply(
        visa,
        application(
            applicant("WL0000001"),
            applicant("X7777777", surname="Müstermann", given_names="Erika", date_of_birth=date(1964, 8, 12)),
            applicant("SBXA000001"),
            applicant("SBXR000001"),
            applicant("C01X00T47"),
        ),
    )
    number = created.application.application_number
    _submit(visa, number, sandbox=True)
    seen = await visa_stub(visa).GetApplicationStatus(_status(number, "C01X00T47"))
    assert [(a.decision, a.refusal_reason) for a in seen.applicants] == [
        (visa_pb2.DECISION_REFUSED, visa_pb2.REFUSAL_REASON_WATCHLIST),
        (visa_pb2.DECISION_REFUSED, visa_pb2.REFUSAL_REASON_WATCHLIST),
        (visa_pb2.DECISION_APPROVED, visa_pb2.REFUSAL_REASON_UNSPECIFIED),
        (visa_pb2.DECISION_REFUSED, visa_pb2.REFUSAL_REASON_INVALID_DOCUMENT),
        (visa_pb2.DECISION_UNSPECIFIED, visa_pb2.REFUSAL_REASON_UNSPECIFIED),
    ]
    assert seen.status == visa_pb2.APPLICATION_STATUS_SUBMITTED


async def test_sandbox_passports_wait_for_an_officer_unless_enabled(visa: RunningService) -> None:
    created = await _apply(visa, application(applicant("SBXA000001")))
    _submit(visa, created.application.application_number, sandbox=False)
    seen = await visa_stub(visa).GetApplicationStatus(
        _status(created.application.application_number, "SBXA000001")
    )
    assert seen.applicants[0].decision == visa_pb2.DECISION_UNSPECIFIED


async def test_the_payment_secret_is_kept_in_neither_database_and_replays_show_it_until_paid(
    payment: RunningService, visa: RunningService
) -> None:
    """Visa keeps no copy of the fee payment's confirmation secret, nor does payment: a replay
    asks payment for it again while the fee is awaited; once paid it has no use and is not shown."""
    request = create_request(application())
    first = await visa_stub(visa).CreateApplication(request)
    again = await visa_stub(visa).CreateApplication(request)
    assert again.payment_confirmation_secret == first.payment_confirmation_secret != ""
    await pay(payment, first)
    _submit(visa, first.application.application_number)  # PaymentSucceeded, as the worker applies it
    after_paying = await visa_stub(visa).CreateApplication(request)

    assert after_paying.application.application_number == first.application.application_number
    assert after_paying.payment_confirmation_secret == ""
    secret = first.payment_confirmation_secret
    assert places_keeping(visa, VisaBase.metadata, secret) == []
    assert places_keeping(payment, PaymentBase.metadata, secret) == []
    assert places_keeping(visa, VisaBase.metadata, first.application.payment_id)  # the scan sees rows


async def test_a_visa_number_drawn_twice_is_drawn_again_and_the_approval_succeeds(
    visa: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Visa numbers are random: a collision with an issued one must cost a new draw, not the
    officer's approval. Forced here: the first draws repeat an issued number."""
    first = await _apply(visa, application(applicant("C01X00T47")))
    second = await _apply(visa, application(applicant("D99Y00001")))
    for created in (first, second):
        _submit(visa, created.application.application_number)
    stub = visa_stub(visa)
    issued = await stub.ApproveApplicant(
        _approve(first.application.application_number, "C01X00T47"), metadata=officer()
    )
    taken = issued.applicants[0].evisa.visa_number
    draws = iter([taken, taken, taken])
    fresh = decisions.new_visa_number
    monkeypatch.setattr(decisions, "new_visa_number", lambda today: next(draws, None) or fresh(today))

    approved = await stub.ApproveApplicant(
        _approve(second.application.application_number, "D99Y00001"), metadata=officer()
    )

    number = approved.applicants[0].evisa.visa_number
    assert number and number != taken
    assert next(draws, None) is None  # every forced collision was drawn
    assert len(outbox_events(visa, events_pb2.VisaIssued)) == 2
