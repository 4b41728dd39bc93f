"""What the payout tests send and read: the payment server paying out through a sandbox
disbursement bank the test holds, agencies' and citizens' tokens, payouts, and a sweeper of
the test's own on the server's database (the server's runs once an hour in these tests, so
that each test says when the bank settles)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeAlias
from unittest import mock

import pytest
from prometheus_client import CollectorRegistry

from asan.payment.v1 import payouts_pb2, payouts_pb2_grpc
from services.payment.disbursement import SANDBOX_PAID_IBAN, DisbursementBank
from services.payment.payout_metrics import PayoutMetrics
from services.payment.payouts import PayoutDesk, PayoutTimes
from services.payment.service import definition
from services.runtime.auth import PrincipalKind
from services.runtime.tokens import mint
from tests.payment.builders import Auth, money, new_request_id, shared_auth
from tests.support.servers import RunningService, running_service, test_config

PayoutStub: TypeAlias = "payouts_pb2_grpc.PayoutServiceAsyncStub"

BENEFICIARY_FIN = "5ZK3T9P"
OTHER_FIN = "7QW2E4R"


def bearer(kind: str, subject: str, agency: str | None = None) -> Auth:
    token = mint(shared_auth(), PrincipalKind(kind), subject, agency_code=agency)
    return (("authorization", f"Bearer {token}"),)


def ktn_service() -> Auth:
    return bearer("service", "agro", "KTN")


def dmx_service() -> Auth:
    return bearer("service", "evisa-portal", "DMX")


def ktn_officer() -> Auth:
    return bearer("officer", "ktn-baku-1", "KTN")


def citizen(fin: str = BENEFICIARY_FIN) -> Auth:
    return bearer("citizen", fin)


def admin() -> Auth:
    return bearer("admin", "ops-admin-1")


def to_iban(iban: str) -> payouts_pb2.PayoutDestination:
    return payouts_pb2.PayoutDestination(iban=iban)


def to_card(reference: str) -> payouts_pb2.PayoutDestination:
    return payouts_pb2.PayoutDestination(input_card_reference=reference)


def payout(
    destination: payouts_pb2.PayoutDestination | None = None,
    amount_minor: int = 47_500,
    beneficiary_fin: str = BENEFICIARY_FIN,
    reference: str = "AGR-2026-7K3P9QXM/CASH",
) -> payouts_pb2.Payout:
    return payouts_pb2.Payout(
        beneficiary_fin=beneficiary_fin,
        destination=destination or to_iban(SANDBOX_PAID_IBAN),
        amount=money(amount_minor),
        purpose="Əkin subsidiyası 2026, AGR-2026-7K3P9QXM",
        reference=reference,
    )


def create_request(
    body: payouts_pb2.Payout, request_id: str | None = None
) -> payouts_pb2.CreatePayoutRequest:
    return payouts_pb2.CreatePayoutRequest(request_id=request_id or new_request_id(), payout=body)


def retry_request(
    payout_id: str, destination: payouts_pb2.PayoutDestination | None = None, request_id: str | None = None
) -> payouts_pb2.RetryPayoutRequest:
    request = payouts_pb2.RetryPayoutRequest(request_id=request_id or new_request_id(), payout_id=payout_id)
    if destination is not None:
        request.destination.CopyFrom(destination)
    return request


def payout_stub(payment: RunningService) -> PayoutStub:
    return payouts_pb2_grpc.PayoutServiceStub(payment.channel)


def sweeper(payment: RunningService, bank: DisbursementBank) -> PayoutDesk:
    """A sweeper of the test's own, on the server's database and bank: `settle_sent()` and
    `resend_pending()` when the test says (a PENDING attempt is sent again at once)."""
    return PayoutDesk(
        payment.server.database,
        bank,
        PayoutMetrics(CollectorRegistry()),
        PayoutTimes(sweep_interval=timedelta(hours=1), resend_after=timedelta(0)),
    )


@asynccontextmanager
async def payout_service(
    database_url: str, bank: DisbursementBank, monkeypatch: pytest.MonkeyPatch, sweep_seconds: float = 3600.0
) -> AsyncIterator[RunningService]:
    """The payment server on a free port, paying out through `bank`."""
    monkeypatch.setenv("PAYMENT_PAYOUT_SWEEP_SECONDS", str(sweep_seconds))
    monkeypatch.setenv("PAYMENT_PAYOUT_RESEND_AFTER_SECONDS", "0")
    config = dataclasses.replace(test_config(definition, database_url), auth=shared_auth())
    with contextlib.ExitStack() as patches:
        patches.enter_context(
            mock.patch("services.payment.service.disbursement_bank_from_name", return_value=bank)
        )
        async with running_service(definition, database_url, config) as service:
            yield service
