from __future__ import annotations

import asyncio
import re
import time

import pytest

from services.payment.acquirer import (
    SANDBOX_APPROVED_CARD,
    SANDBOX_DECLINED_CARD,
    SANDBOX_EXPIRED_CARD,
    SANDBOX_PROVIDER_ERROR_CARD,
    SANDBOX_UNAVAILABLE_CARD,
    Acquirer,
    AcquirerUnavailable,
    ChargeOutcome,
    ChargeResult,
    SandboxAcquirer,
    acquirer_from_name,
    payment_outcome,
)
from services.payment.cards import CardDetails
from services.payment.states import FailureCode, PaymentStatus

TRANSACTION_ID = re.compile(r"^SBX-[0-9A-F]{16}$")


def card(number: str = SANDBOX_APPROVED_CARD) -> CardDetails:
    return CardDetails(
        number=number, expiry_month=5, expiry_year=2029, cvc="987", holder_name="AYSEL MAMMADOVA"
    )


async def charge(
    acquirer: SandboxAcquirer, number: str = SANDBOX_APPROVED_CARD, key: str = "k-1", amount: int = 2000
) -> ChargeResult:
    return await acquirer.charge(
        payment_id="p-1", amount_minor=amount, currency="AZN", card=card(number), idempotency_key=key
    )


@pytest.mark.parametrize(
    ("number", "outcome"),
    [
        (SANDBOX_APPROVED_CARD, ChargeOutcome.APPROVED),
        (SANDBOX_DECLINED_CARD, ChargeOutcome.DECLINED),
        (SANDBOX_EXPIRED_CARD, ChargeOutcome.EXPIRED_CARD),
        (SANDBOX_PROVIDER_ERROR_CARD, ChargeOutcome.PROVIDER_ERROR),
        ("5555555555554444", ChargeOutcome.APPROVED),
        ("4444333322221112", ChargeOutcome.DECLINED),
    ],
)
async def test_sandbox_answers_by_card_number(number: str, outcome: ChargeOutcome) -> None:
    result = await charge(SandboxAcquirer(), number)
    assert result.outcome is outcome
    assert result.message
    if outcome is ChargeOutcome.APPROVED:
        assert result.transaction_id is not None
        assert TRANSACTION_ID.fullmatch(result.transaction_id)
    else:
        assert result.transaction_id is None


async def test_sandbox_charges_once_per_idempotency_key() -> None:
    acquirer = SandboxAcquirer()
    first = await charge(acquirer, key="k-1")
    again = await charge(acquirer, key="k-1")
    assert again == first
    assert len(acquirer.charges) == 1


async def test_sandbox_replays_a_refusal_too() -> None:
    acquirer = SandboxAcquirer()
    assert await charge(acquirer, SANDBOX_DECLINED_CARD) == await charge(acquirer, SANDBOX_DECLINED_CARD)
    assert len(acquirer.charges) == 1


async def test_sandbox_charges_again_with_a_new_key() -> None:
    acquirer = SandboxAcquirer()
    first = await charge(acquirer, key="k-1")
    second = await charge(acquirer, key="k-2")
    assert first.transaction_id != second.transaction_id
    assert len(acquirer.charges) == 2


async def test_concurrent_retries_charge_once() -> None:
    acquirer = SandboxAcquirer(latency_seconds=0.02)
    results = await asyncio.gather(*(charge(acquirer, key="k-1") for _ in range(5)))
    assert len({r.transaction_id for r in results}) == 1
    assert len(acquirer.charges) == 1


async def test_reusing_a_key_for_another_charge_is_refused() -> None:
    acquirer = SandboxAcquirer()
    await charge(acquirer, key="k-1", amount=2000)
    with pytest.raises(ValueError, match="idempotency key"):
        await charge(acquirer, key="k-1", amount=2001)


async def test_unavailable_acquirer_raises_and_charges_nothing() -> None:
    acquirer = SandboxAcquirer()
    for _ in range(2):
        with pytest.raises(AcquirerUnavailable):
            await charge(acquirer, SANDBOX_UNAVAILABLE_CARD)
    assert acquirer.charges == []


async def test_sandbox_latency_delays_the_answer() -> None:
    acquirer = SandboxAcquirer(latency_seconds=0.05)
    started = time.monotonic()
    await charge(acquirer)
    assert time.monotonic() - started >= 0.05


async def test_sandbox_records_only_brand_and_last_four_digits() -> None:
    acquirer = SandboxAcquirer()
    await charge(acquirer)
    recorded = acquirer.charges[0]
    assert (recorded.card_brand, recorded.card_last4) == ("VISA", "1111")
    assert SANDBOX_APPROVED_CARD not in repr(acquirer.charges)
    assert SANDBOX_APPROVED_CARD not in repr(vars(acquirer))
    assert "987" not in repr(vars(acquirer))


async def test_sandbox_refunds_once_per_idempotency_key() -> None:
    acquirer = SandboxAcquirer()
    approved = await charge(acquirer)
    assert approved.transaction_id is not None
    first = await acquirer.refund(
        transaction_id=approved.transaction_id, amount_minor=500, currency="AZN", idempotency_key="r-1"
    )
    again = await acquirer.refund(
        transaction_id=approved.transaction_id, amount_minor=500, currency="AZN", idempotency_key="r-1"
    )
    other = await acquirer.refund(
        transaction_id=approved.transaction_id, amount_minor=500, currency="AZN", idempotency_key="r-2"
    )
    assert first == again
    assert TRANSACTION_ID.fullmatch(first.refund_transaction_id)
    assert other.refund_transaction_id != first.refund_transaction_id
    assert len(acquirer.refunds) == 2


@pytest.mark.parametrize(
    ("outcome", "status", "failure"),
    [
        (ChargeOutcome.APPROVED, PaymentStatus.SUCCEEDED, None),
        (ChargeOutcome.DECLINED, PaymentStatus.FAILED, FailureCode.REJECTED),
        (ChargeOutcome.EXPIRED_CARD, PaymentStatus.FAILED, FailureCode.EXPIRED),
        (ChargeOutcome.PROVIDER_ERROR, PaymentStatus.FAILED, FailureCode.PROVIDER_ERROR),
    ],
)
def test_charge_outcome_decides_the_payments_status(
    outcome: ChargeOutcome, status: PaymentStatus, failure: FailureCode | None
) -> None:
    assert payment_outcome(outcome) == (status, failure)


def test_sandbox_is_chosen_by_name() -> None:
    acquirer: Acquirer = acquirer_from_name("sandbox")
    assert isinstance(acquirer, SandboxAcquirer)


@pytest.mark.parametrize("name", ["", "Sandbox", "kapital"])
def test_unknown_acquirer_name_is_refused_with_the_allowed_names(name: str) -> None:
    with pytest.raises(ValueError, match="PAYMENT_ACQUIRER must be one of: sandbox") as raised:
        acquirer_from_name(name)
    assert repr(name) in str(raised.value)
