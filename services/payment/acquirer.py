"""The card acquirer: the bank that charges cards for ASAN ödəniş.

`Acquirer` is the interface the servicer depends on; `SandboxAcquirer` stands in for the real
acquirer (which cannot be reached from here) and decides by test card number. Which one runs
is chosen by name from the PAYMENT_ACQUIRER environment variable (`acquirer_from_name`).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from stdnum import luhn

from services.payment.cards import CardDetails, card_brand, last4
from services.payment.states import FailureCode, PaymentStatus

T = TypeVar("T")


class ChargeOutcome(StrEnum):
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    EXPIRED_CARD = "EXPIRED_CARD"
    # The acquirer answered, but with an error of its own: the payer may try again later.
    PROVIDER_ERROR = "PROVIDER_ERROR"
    # The attempt had been voided (`Acquirer.void_charge`) before the charge reached the
    # acquirer: no money moved, and none ever will under this key.
    VOIDED = "VOIDED"


@dataclass(frozen=True)
class ChargeResult:
    """The acquirer's answer. `transaction_id` is set when APPROVED. `message` may be shown to
    the payer: it says what happened to the card, nothing of the acquirer's internals."""

    outcome: ChargeOutcome
    transaction_id: str | None
    message: str


class RefundOutcome(StrEnum):
    APPROVED = "APPROVED"
    # The acquirer refused the refund (the card account is closed, the charge was disputed):
    # no money moved; the reserved amount is released.
    DECLINED = "DECLINED"


@dataclass(frozen=True)
class RefundResult:
    """The acquirer's answer to a refund. `refund_transaction_id` is set when APPROVED, else ""."""

    refund_transaction_id: str
    outcome: RefundOutcome = RefundOutcome.APPROVED
    message: str = "Refunded."


class AcquirerUnavailable(Exception):
    """The acquirer could not be reached or did not answer (a network-level failure). Whether
    the card was charged is unknown: retry with the same idempotency key, which charges at
    most once."""


class Acquirer(Protocol):
    """A card acquirer.

    `charge` and `refund` must be idempotent by `idempotency_key`: a call repeated with a key
    already seen returns the first call's result and moves no money again, so a retried
    ConfirmPayment or RefundPayment never charges or refunds twice. Use one key per attempt
    (one per payment's charge, one per refund), never one shared by two attempts.

    Every method raises AcquirerUnavailable on a network-level failure. A refusal is not a
    failure: `charge` and `refund` return it in their result. Implementations keep no card data
    beyond the brand and last four digits.
    """

    async def charge(
        self, *, payment_id: str, amount_minor: int, currency: str, card: CardDetails, idempotency_key: str
    ) -> ChargeResult: ...

    async def refund(
        self, *, transaction_id: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> RefundResult: ...

    async def charge_status(self, *, idempotency_key: str) -> ChargeResult | None:
        """The result of the charge made under `idempotency_key`, None if the acquirer never
        made one (yet: a charge may still be on its way)."""
        ...

    async def void_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """Makes sure that no charge is ever made under `idempotency_key` from now on: returns
        the result of the charge already made under it, or None when there was none, in which
        case a charge arriving later under the key is answered VOIDED and moves no money
        (a card authorisation reversal). For deciding that a payment whose answer was lost was
        not charged, with no retry able to charge it afterwards."""
        ...


def payment_outcome(outcome: ChargeOutcome) -> tuple[PaymentStatus, FailureCode | None]:
    """The status (and failure code) a SUBMITTED payment moves to on the acquirer's answer."""
    match outcome:
        case ChargeOutcome.APPROVED:
            return PaymentStatus.SUCCEEDED, None
        case ChargeOutcome.DECLINED:
            return PaymentStatus.FAILED, FailureCode.REJECTED
        case ChargeOutcome.EXPIRED_CARD:
            return PaymentStatus.FAILED, FailureCode.EXPIRED
        case ChargeOutcome.PROVIDER_ERROR | ChargeOutcome.VOIDED:
            return PaymentStatus.FAILED, FailureCode.PROVIDER_ERROR


# Sandbox test cards. Any other Luhn-valid number is approved.
SANDBOX_APPROVED_CARD = "4444333322221111"
SANDBOX_DECLINED_CARD = "4000000000000002"
SANDBOX_EXPIRED_CARD = "4000000000000069"
SANDBOX_PROVIDER_ERROR_CARD = "4000000000000119"
# Raises AcquirerUnavailable without recording the attempt, to exercise the retry path.
SANDBOX_UNAVAILABLE_CARD = "4000000000000507"
# A refund of exactly this amount (13.13 in any currency) is declined.
SANDBOX_DECLINED_REFUND_MINOR = 1313

_VOIDED = ChargeResult(
    outcome=ChargeOutcome.VOIDED,
    transaction_id=None,
    message="The card could not be charged right now; try again later.",
)

_SANDBOX_ANSWERS: dict[str, tuple[ChargeOutcome, str]] = {
    SANDBOX_DECLINED_CARD: (
        ChargeOutcome.DECLINED,
        "The card's bank declined the payment; use another card.",
    ),
    SANDBOX_EXPIRED_CARD: (ChargeOutcome.EXPIRED_CARD, "The card has expired; use another card."),
    SANDBOX_PROVIDER_ERROR_CARD: (
        ChargeOutcome.PROVIDER_ERROR,
        "The card could not be charged right now; try again later.",
    ),
}


@dataclass(frozen=True)
class SandboxCharge:
    """One charge the sandbox performed (replays are not charges). Card: brand and last4 only."""

    payment_id: str
    amount_minor: int
    currency: str
    card_brand: str
    card_last4: str
    idempotency_key: str
    result: ChargeResult


@dataclass(frozen=True)
class SandboxRefund:
    transaction_id: str
    amount_minor: int
    currency: str
    idempotency_key: str
    result: RefundResult


class ChargeHold:
    """Charges held on their way to the sandbox acquirer until `release()`: a call in flight for
    as long as a test needs. `arrived` is set when the first held charge is waiting."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def wait(self) -> None:
        self.arrived.set()
        await self._released.wait()


class SandboxAcquirer:
    """An in-memory acquirer for development and tests: answers by test card number.

    `latency_seconds` delays every answer, to exercise timeouts and the latency metric.
    `charges` and `refunds` list what was actually performed, so that tests can assert that a
    retry moved no money; `calls` lists every call received, replays and refusals included
    (operation and idempotency key), so that tests can count what the service asked. A key
    reused with different parameters is a bug in the caller and raises ValueError, as real
    acquirers refuse it.

    Outages are switched by attributes: `reachable = False` makes every call fail before it
    arrives; `answers_lost = True` makes every call fail after it was carried out.
    `hold_charges()` keeps the charges arriving from then on in flight until released. With
    `honours_voids=False` a void answers "no charge" but lets a charge arrive later all the
    same: an acquirer whose reversal lost a race, to exercise the refund of a late charge.
    """

    def __init__(self, latency_seconds: float = 0.0, *, honours_voids: bool = True) -> None:
        self.latency_seconds = latency_seconds
        self.honours_voids = honours_voids
        self.reachable = True
        self.answers_lost = False
        self.charges: list[SandboxCharge] = []
        self.refunds: list[SandboxRefund] = []
        self.calls: list[tuple[str, str]] = []
        self._charges_by_key: dict[str, SandboxCharge] = {}
        self._refunds_by_key: dict[str, SandboxRefund] = {}
        self._voided: set[str] = set()
        self._hold: ChargeHold | None = None

    def hold_charges(self) -> ChargeHold:
        """Holds every charge that arrives from now on before the acquirer sees it."""
        self._hold = ChargeHold()
        return self._hold

    def calls_of(self, operation: str) -> list[str]:
        """The idempotency keys of the calls of one operation ("charge", "refund", ...)."""
        return [key for called, key in self.calls if called == operation]

    async def charge(
        self, *, payment_id: str, amount_minor: int, currency: str, card: CardDetails, idempotency_key: str
    ) -> ChargeResult:
        self.calls.append(("charge", idempotency_key))
        await self._arrive()
        if self._hold is not None:
            await self._hold.wait()
        # From here to the return there is no await, so concurrent retries cannot both charge.
        seen = self._charges_by_key.get(idempotency_key)
        if seen is not None:
            if (seen.payment_id, seen.amount_minor, seen.currency, seen.card_last4) != (
                payment_id,
                amount_minor,
                currency,
                last4(card.number),
            ):
                raise ValueError("idempotency key reused for a different charge")
            return self._answer(seen.result)
        if idempotency_key in self._voided and self.honours_voids:
            return self._answer(_VOIDED)
        if card.number == SANDBOX_UNAVAILABLE_CARD:
            raise AcquirerUnavailable("sandbox: simulated network failure")
        charge = SandboxCharge(
            payment_id=payment_id,
            amount_minor=amount_minor,
            currency=currency,
            card_brand=card_brand(card.number),
            card_last4=last4(card.number),
            idempotency_key=idempotency_key,
            result=self._decide(card.number),
        )
        self._charges_by_key[idempotency_key] = charge
        self.charges.append(charge)
        return self._answer(charge.result)

    async def refund(
        self, *, transaction_id: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        self.calls.append(("refund", idempotency_key))
        await self._arrive()
        seen = self._refunds_by_key.get(idempotency_key)
        if seen is not None:
            if (seen.transaction_id, seen.amount_minor, seen.currency) != (
                transaction_id,
                amount_minor,
                currency,
            ):
                raise ValueError("idempotency key reused for a different refund")
            return self._answer(seen.result)
        if amount_minor <= 0:
            raise ValueError("a refund amount must be positive")
        # Any transaction id is accepted: the sandbox forgets its charges on restart, and the
        # refundable amount is the payment service's rule, checked before calling.
        if amount_minor == SANDBOX_DECLINED_REFUND_MINOR:
            result = RefundResult(
                refund_transaction_id="",
                outcome=RefundOutcome.DECLINED,
                message="The card's bank declined the refund.",
            )
        else:
            result = RefundResult(refund_transaction_id=_sandbox_transaction_id())
        refund = SandboxRefund(
            transaction_id=transaction_id,
            amount_minor=amount_minor,
            currency=currency,
            idempotency_key=idempotency_key,
            result=result,
        )
        self._refunds_by_key[idempotency_key] = refund
        if result.outcome is RefundOutcome.APPROVED:
            self.refunds.append(refund)
        return self._answer(refund.result)

    async def charge_status(self, *, idempotency_key: str) -> ChargeResult | None:
        self.calls.append(("charge_status", idempotency_key))
        await self._arrive()
        seen = self._charges_by_key.get(idempotency_key)
        return self._answer(seen.result if seen else None)

    async def void_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        self.calls.append(("void_charge", idempotency_key))
        await self._arrive()
        seen = self._charges_by_key.get(idempotency_key)
        if seen is None:
            self._voided.add(idempotency_key)
        return self._answer(seen.result if seen else None)

    async def _arrive(self) -> None:
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        if not self.reachable:
            raise AcquirerUnavailable("sandbox: unreachable")

    def _answer(self, result: T) -> T:
        if self.answers_lost:
            raise AcquirerUnavailable("sandbox: the answer was lost on its way back")
        return result

    @staticmethod
    def _decide(number: str) -> ChargeResult:
        answer = _SANDBOX_ANSWERS.get(number)
        if answer is not None:
            return ChargeResult(outcome=answer[0], transaction_id=None, message=answer[1])
        if not (number.isascii() and number.isdigit() and luhn.is_valid(number)):
            # The servicer validates cards first; a real acquirer declines an invalid number too.
            return ChargeResult(
                outcome=ChargeOutcome.DECLINED, transaction_id=None, message="The card number is not valid."
            )
        return ChargeResult(
            outcome=ChargeOutcome.APPROVED, transaction_id=_sandbox_transaction_id(), message="Approved."
        )


def _sandbox_transaction_id() -> str:
    return "SBX-" + secrets.token_hex(8).upper()


ACQUIRER_NAMES = ("sandbox",)


def acquirer_from_name(name: str) -> Acquirer:
    """The acquirer named by PAYMENT_ACQUIRER."""
    if name == "sandbox":
        return SandboxAcquirer()
    raise ValueError(f"PAYMENT_ACQUIRER must be one of: {', '.join(ACQUIRER_NAMES)}; got {name!r}")
