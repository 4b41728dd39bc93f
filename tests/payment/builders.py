"""What the PaymentService tests send and read: callers, requests, rejections, stored rows.

Every test drives the real server over gRPC with real tokens; the readers here look at what
a client sees (status code and `google.rpc.Status` details) and, where a rule is about what
is kept, at the service's own database and `/metrics`.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, cast
from unittest import mock

import grpc
from google.protobuf import text_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import MetaData, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from asan.common.v1 import identifiers_pb2, money_pb2
from asan.common.v1.events_pb2 import EventEnvelope
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.payment.acquirer import SANDBOX_APPROVED_CARD, Acquirer
from services.payment.service import definition
from services.payment.tables import PaymentRow, runtime_tables
from services.runtime.auth import PrincipalKind
from services.runtime.config import AuthConfig
from services.runtime.tokens import ensure_keypair, mint
from tests.support.servers import RunningService, running_service, test_config

# The async stub the `stub` fixture really is (the generated class is type-check only).
Stub: TypeAlias = "payment_service_pb2_grpc.PaymentServiceAsyncStub"
# Call metadata carrying a bearer token.
Auth: TypeAlias = tuple[tuple[str, str], ...]
M = TypeVar("M", bound=Message)
T = TypeVar("T")

DOMAIN = "payment.asan.gov.az"

# --- People ----------------------------------------------------------------------------------

CITIZEN_FIN = "5ZK3T9P"
OTHER_CITIZEN_FIN = "7QW2E4R"
# An organisation paying customs duty.
ORGANISATION_VOEN = "1401555071"


@dataclass(frozen=True)
class Callers:
    """Tokens of everyone the tests call as. Agencies: DMX (migration), DIN (internal
    affairs), DGK (customs). Tokens are signed with the process's shared key pair
    (`shared_auth`), so one set serves every server of the run."""

    citizen: Auth
    other_citizen: Auth
    dmx_service: Auth
    din_service: Auth
    dgk_service: Auth
    dmx_officer: Auth
    din_officer: Auth
    admin: Auth
    bank: Auth

    @classmethod
    def of(cls, payment: RunningService) -> Callers:
        assert payment.auth == shared_auth(), "start the server with payment_service()"
        return _callers()


@functools.cache
def _callers() -> Callers:
    def bearer(kind: str, subject: str, agency: str | None = None, institution: str | None = None) -> Auth:
        token = mint(
            shared_auth(), PrincipalKind(kind), subject, agency_code=agency, institution_code=institution
        )
        return (("authorization", f"Bearer {token}"),)

    return Callers(
        citizen=bearer("citizen", CITIZEN_FIN),
        other_citizen=bearer("citizen", OTHER_CITIZEN_FIN),
        dmx_service=bearer("service", "evisa-portal", "DMX"),
        din_service=bearer("service", "traffic-police", "DIN"),
        dgk_service=bearer("service", "customs-declarations", "DGK"),
        dmx_officer=bearer("officer", "dmx-officer-17", "DMX"),
        din_officer=bearer("officer", "din-officer-4", "DIN"),
        admin=bearer("admin", "ops-admin-1"),
        bank=bearer("bank", "kapital-teller-2", institution="KAPITALBANK"),
    )


# --- Requests --------------------------------------------------------------------------------


def new_request_id() -> str:
    return str(uuid.uuid4())


def money(minor_units: int, currency: str = "AZN") -> money_pb2.Money:
    return money_pb2.Money(minor_units=minor_units, currency_code=currency)


def passport_duty(payer_fin: str = CITIZEN_FIN, reference: str = "PASS-2026-0001") -> payment_pb2.Payment:
    """The DMX passport duty: a fixed fee of 60.00 AZN."""
    return payment_pb2.Payment(
        payer=identifiers_pb2.PartyId(fin=payer_fin),
        service_code="state.duty.passport",
        amount=money(6000),
        reference=reference,
        description="Passport issue",
    )


def traffic_fine(
    amount_minor: int = 5000, payer_fin: str = CITIZEN_FIN, reference: str = "YHQ-2026-000451"
) -> payment_pb2.Payment:
    """A DIN traffic fine: the amount is set by the fining service, 10.00 to 5,000.00 AZN."""
    return payment_pb2.Payment(
        payer=identifiers_pb2.PartyId(fin=payer_fin),
        service_code="traffic.fine",
        amount=money(amount_minor),
        reference=reference,
        metadata={"protocol": "AB-123456"},
    )


def customs_duty(
    amount_minor: int = 125_000, payer_voen: str = ORGANISATION_VOEN, reference: str = "GBD-2026-77"
) -> payment_pb2.Payment:
    """A DGK customs duty paid by an organisation (VÖEN)."""
    return payment_pb2.Payment(
        payer=identifiers_pb2.PartyId(voen=payer_voen),
        service_code="customs.duty",
        amount=money(amount_minor),
        reference=reference,
    )


def evisa(payer_fin: str = CITIZEN_FIN) -> payment_pb2.Payment:
    """A DMX standard e-visa: a fixed fee of 20.00 USD."""
    return payment_pb2.Payment(
        payer=identifiers_pb2.PartyId(fin=payer_fin),
        service_code="visa.evisa.standard",
        amount=money(2000, "USD"),
        reference="EVISA-APP-9001",
    )


def create_request(
    payment: payment_pb2.Payment, request_id: str | None = None
) -> payment_service_pb2.CreatePaymentRequest:
    return payment_service_pb2.CreatePaymentRequest(
        request_id=request_id or new_request_id(), payment=payment
    )


def card(
    number: str = SANDBOX_APPROVED_CARD,
    *,
    expiry_month: int = 12,
    expiry_year: int | None = None,
    cvc: str = "123",
    holder_name: str = "NIGAR HASANOVA",
) -> payment_pb2.Card:
    """A card valid for a few more years; by default the sandbox's approved test card. The
    holder need not be the payer."""
    year = expiry_year if expiry_year is not None else datetime.now(UTC).year + 3
    return payment_pb2.Card(
        number=number, expiry_month=expiry_month, expiry_year=year, cvc=cvc, holder_name=holder_name
    )


def confirm_request(
    payment_id: str, with_card: payment_pb2.Card | None = None, request_id: str | None = None
) -> payment_service_pb2.ConfirmPaymentRequest:
    return payment_service_pb2.ConfirmPaymentRequest(
        payment_id=payment_id,
        request_id=request_id or new_request_id(),
        card=with_card or card(),
    )


def cancel_request(
    payment_id: str, request_id: str | None = None
) -> payment_service_pb2.CancelPaymentRequest:
    return payment_service_pb2.CancelPaymentRequest(
        payment_id=payment_id, request_id=request_id or new_request_id()
    )


def refund_request(
    payment_id: str,
    amount_minor: int,
    *,
    currency: str = "AZN",
    expected_refundable_minor: int | None = None,
    reason: str = "Duplicate payment",
    request_id: str | None = None,
) -> payment_service_pb2.RefundPaymentRequest:
    request = payment_service_pb2.RefundPaymentRequest(
        payment_id=payment_id,
        request_id=request_id or new_request_id(),
        amount=money(amount_minor, currency),
        reason=reason,
    )
    if expected_refundable_minor is not None:
        request.expected_refundable_amount.CopyFrom(money(expected_refundable_minor, currency))
    return request


def get_request(payment_id: str) -> payment_service_pb2.GetPaymentRequest:
    return payment_service_pb2.GetPaymentRequest(payment_id=payment_id)


def receipt_request(payment_id: str) -> payment_service_pb2.GetReceiptRequest:
    return payment_service_pb2.GetReceiptRequest(payment_id=payment_id)


# --- Flows -----------------------------------------------------------------------------------


async def create(stub: Stub, auth: Auth, payment: payment_pb2.Payment) -> payment_pb2.Payment:
    created: payment_pb2.Payment = await stub.CreatePayment(create_request(payment), metadata=auth)
    assert created.status == payment_pb2.PAYMENT_STATUS_CREATED
    return created


async def create_and_pay(stub: Stub, auth: Auth, payment: payment_pb2.Payment) -> payment_pb2.Payment:
    """A payment created and paid with the approved card by the same caller."""
    created = await create(stub, auth, payment)
    paid: payment_pb2.Payment = await stub.ConfirmPayment(confirm_request(created.payment_id), metadata=auth)
    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    return paid


async def get(stub: Stub, auth: Auth, payment_id: str) -> payment_pb2.Payment:
    found: payment_pb2.Payment = await stub.GetPayment(get_request(payment_id), metadata=auth)
    return found


async def list_all(stub: Stub, auth: Auth, **filters: Any) -> list[payment_pb2.Payment]:
    """Every payment `auth` may see that matches `filters`, walking all pages."""
    payments: list[payment_pb2.Payment] = []
    token = ""
    while True:
        page = await stub.ListPayments(
            payment_service_pb2.ListPaymentsRequest(page_size=100, page_token=token, **filters), metadata=auth
        )
        payments.extend(page.payments)
        token = page.next_page_token
        if not token:
            return payments


# --- Rejections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """A failed call as a client reads it: the code and the `google.rpc.Status` details."""

    code: grpc.StatusCode
    status: status_pb2.Status
    error_info: error_details_pb2.ErrorInfo
    field_violations: list[error_details_pb2.BadRequest.FieldViolation]

    @property
    def reason(self) -> str:
        return self.error_info.reason

    @property
    def violations(self) -> dict[str, str]:
        """Field path -> reason, one entry per violated field."""
        return {v.field: v.reason for v in self.field_violations}

    @property
    def violated_fields(self) -> list[str]:
        return [v.field for v in self.field_violations]

    def readable_text(self) -> str:
        """Everything the client can read: message and every detail, as text."""
        return (
            self.status.message
            + "\n"
            + "\n".join(text_format.MessageToString(_unpack_any(detail)) for detail in self.status.details)
        )


def _unpack_any(packed: Any) -> Message:
    for message_type in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.LocalizedMessage,
    ):
        if packed.Is(message_type.DESCRIPTOR):
            message = message_type()
            packed.Unpack(message)
            return message
    raise AssertionError(f"unexpected error detail {packed.type_url}")


async def rejected(call: Awaitable[object]) -> Rejection:
    """Awaits a call that must fail; returns the rich status it failed with. Every error of
    the service carries exactly one ErrorInfo of the payment domain and, when
    INVALID_ARGUMENT, one BadRequest with the violations."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        # AioRpcError has the code(), details() and trailing_metadata() that from_call reads.
        status = rpc_status.from_call(cast(grpc.Call, error))
        assert status is not None, f"{error.code()} without google.rpc.Status details: {error.details()}"
        infos = [_unpack_any(d) for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
        assert len(infos) == 1, status
        info = infos[0]
        assert isinstance(info, error_details_pb2.ErrorInfo)
        assert info.domain == DOMAIN
        bad_requests = [
            _unpack_any(d) for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)
        ]
        violations = [
            v for b in bad_requests if isinstance(b, error_details_pb2.BadRequest) for v in b.field_violations
        ]
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert len(bad_requests) == 1 and violations, status
            assert all(v.description for v in violations), "each violation must say what to fix"
        return Rejection(code=error.code(), status=status, error_info=info, field_violations=violations)
    raise AssertionError("the call succeeded, but it should have been rejected")


# --- The server with a known acquirer --------------------------------------------------------


@functools.cache
def shared_auth() -> AuthConfig:
    """One development key pair for every server of the test process: an RSA key made for
    each test would cost more than the test itself."""
    keys = Path(tempfile.mkdtemp(prefix="asan-payment-test-keys-"))
    atexit.register(shutil.rmtree, keys, ignore_errors=True)
    auth = dataclasses.replace(
        AuthConfig.from_env(),
        public_key_file=keys / "auth_public.pem",
        private_key_file=keys / "auth_private.pem",
    )
    ensure_keypair(auth)
    return auth


@asynccontextmanager
async def payment_service(
    database_url: str, acquirer: Acquirer | None = None
) -> AsyncIterator[RunningService]:
    """The payment service on a free port; charging through `acquirer` when given, so that a
    test can see what was charged."""
    config = dataclasses.replace(test_config(definition, database_url), auth=shared_auth())
    with contextlib.ExitStack() as patches:
        if acquirer is not None:
            patches.enter_context(
                mock.patch("services.payment.service.acquirer_from_name", return_value=acquirer)
            )
        async with running_service(definition, database_url, config) as service:
            yield service


# --- What the service keeps ------------------------------------------------------------------


async def in_database(payment: RunningService, unit: Callable[[Session], T]) -> T:
    """Runs `unit` in one transaction on the service's own database."""
    return await payment.server.database.run(unit)


async def payment_rows(payment: RunningService) -> list[PaymentRow]:
    return await in_database(payment, lambda s: list(s.scalars(select(PaymentRow))))


async def outbox_events(payment: RunningService, event_type: type[M]) -> list[M]:
    """Payloads of the outbox rows of `event_type`, in outbox order; each row's event_type
    column must name it."""
    name = event_type.DESCRIPTOR.name

    def read(session: Session) -> list[M]:
        outbox = runtime_tables.outbox
        rows = session.execute(select(outbox.c.event_type, outbox.c.envelope).order_by(outbox.c.position))
        events: list[M] = []
        for row_type, raw in rows:
            envelope = EventEnvelope.FromString(raw)
            assert envelope.event_type == row_type
            assert envelope.source == "payment"
            if row_type == name:
                event = event_type()
                assert envelope.payload.Unpack(event)
                events.append(event)
        return events

    return await in_database(payment, read)


# --- Metrics ---------------------------------------------------------------------------------


def metric_value(payment: RunningService, sample_name: str, **labels: str) -> float:
    """The sum of the samples on /metrics named `sample_name` with (at least) `labels`;
    0.0 when none has been recorded yet."""
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(payment.metrics_text())
        for sample in family.samples
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def places_keeping(service: RunningService, metadata: MetaData, secret: str) -> list[str]:
    """Where the service keeps `secret` at rest: each table with a value holding it (as text or
    as bytes, such as a stored protobuf response) and, on SQLite, each database file holding its
    bytes (the main file and the write-ahead log, where rows linger after they change)."""
    needle = secret.encode()

    def tables_holding(session: Session) -> list[str]:
        return [
            table.name
            for table in metadata.sorted_tables
            if any(
                needle in value if isinstance(value, bytes) else secret in str(value)
                for row in session.execute(select(table))
                for value in row
            )
        ]

    found = service.server.database.run_sync(tables_holding)
    url = make_url(service.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        for file in (Path(url.database), Path(url.database + "-wal")):
            if file.exists() and needle in file.read_bytes():
                found.append(file.name)
    return found
