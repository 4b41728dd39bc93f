"""The disbursement bank: the bank that pays money out of the treasury's account for ASAN ödəniş.

`DisbursementBank` is the interface the payout flow depends on; `SandboxDisbursementBank`
stands in for the real bank (which cannot be reached from here) and decides by test account.
Which one runs is chosen by name from the PAYMENT_DISBURSEMENT_BANK environment variable
(`disbursement_bank_from_name`).

A transfer is asynchronous, as credit transfers are: `transfer` hands it to the bank, which
accepts or refuses it at once; whether it reached the account is learned later from
`transfer_state` (PAID, FAILED, or RETURNED when the beneficiary's bank sent it back).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

T = TypeVar("T")


class DestinationKind(StrEnum):
    IBAN = "IBAN"
    INPUT_CARD = "INPUT_CARD"


@dataclass(frozen=True)
class Destination:
    kind: DestinationKind
    # The IBAN, or the issuing bank's reference of the card.
    account: str


@dataclass(frozen=True)
class Transfer:
    """What the bank is asked to pay, under one idempotency key."""

    transfer_key: str
    beneficiary_fin: str
    destination: Destination
    amount_minor: int
    currency: str
    purpose: str


class TransferOutcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    # Refused at once (a closed account, a blocked card): no money left.
    REFUSED = "REFUSED"


@dataclass(frozen=True)
class TransferReceipt:
    """The bank's answer to a transfer. `bank_reference` is set when ACCEPTED; `failure_reason`
    (UPPER_SNAKE) and `retryable` when REFUSED."""

    outcome: TransferOutcome
    bank_reference: str = ""
    failure_reason: str = ""
    retryable: bool = False


class SettlementState(StrEnum):
    # Accepted, not settled yet.
    PROCESSING = "PROCESSING"
    PAID = "PAID"
    FAILED = "FAILED"
    # The beneficiary's bank sent the money back to the treasury.
    RETURNED = "RETURNED"


@dataclass(frozen=True)
class TransferState:
    state: SettlementState
    failure_reason: str = ""
    retryable: bool = False


class DisbursementUnavailable(Exception):
    """The bank could not be reached or did not answer. Whether it received the transfer is
    unknown: send it again under the same key, which pays at most once."""


class DisbursementBank(Protocol):
    """A disbursement bank.

    `transfer` is idempotent by `transfer_key`: a transfer repeated under a key already seen
    returns the first answer and pays nothing again. Use one key per attempt of a payout, never
    one shared by two payouts. Both methods raise DisbursementUnavailable on a network-level
    failure; a refusal or a failure is an answer, not an exception.
    """

    async def transfer(self, transfer: Transfer) -> TransferReceipt: ...

    async def transfer_state(self, *, transfer_key: str) -> TransferState | None:
        """Where the transfer made under `transfer_key` is; None if the bank never received one."""
        ...


def _sandbox_iban(account: str) -> str:
    """A valid Azerbaijani IBAN of the sandbox bank SBXB (check digits by ISO 7064 mod 97-10)."""
    bban = "SBXB" + account.rjust(20, "0")
    digits = "".join(str(int(c, 36)) for c in bban + "AZ00")
    return f"AZ{98 - int(digits) % 97:02d}{bban}"


# Sandbox accounts. Any other valid account is paid at the bank's first settlement.
SANDBOX_PAID_IBAN = _sandbox_iban("1")
# Refused at once: the account is closed.
SANDBOX_CLOSED_IBAN = _sandbox_iban("CLOSED")
# Accepted, then failed at settlement: the account is blocked.
SANDBOX_BLOCKED_IBAN = _sandbox_iban("BLOCKED")
# Accepted, then sent back by the beneficiary's bank.
SANDBOX_RETURNED_IBAN = _sandbox_iban("RETURN")
# The first transfer to it fails with a technical error (retryable); later ones are paid.
SANDBOX_FLAKY_IBAN = _sandbox_iban("FLAKY")
SANDBOX_BLOCKED_CARD = "SBX-CARD-BLOCKED"
SANDBOX_FLAKY_CARD = "SBX-CARD-FLAKY"

_REFUSED_AT_ONCE = {
    SANDBOX_CLOSED_IBAN: "ACCOUNT_CLOSED",
    SANDBOX_BLOCKED_CARD: "CARD_BLOCKED",
}
_FLAKY = frozenset({SANDBOX_FLAKY_IBAN, SANDBOX_FLAKY_CARD})
TECHNICAL_ERROR = "BANK_TECHNICAL_ERROR"


@dataclass
class SandboxTransfer:
    """One transfer the sandbox received (replays are not transfers)."""

    transfer: Transfer
    receipt: TransferReceipt
    state: TransferState


class SandboxDisbursementBank:
    """An in-memory disbursement bank for development and tests: answers by test account.

    `transfers` lists what the bank received and accepted or refused, so that tests can assert
    that a re-sent payout paid once; `calls` lists every call (operation, key). Outages are
    switched by attributes, as the sandbox acquirer's: `reachable = False` fails every call
    before it arrives; `answers_lost = True` fails it after it was carried out. A key reused
    for a different transfer raises ValueError, as real banks refuse it.
    """

    def __init__(self) -> None:
        self.reachable = True
        self.answers_lost = False
        self.transfers: list[SandboxTransfer] = []
        self.calls: list[tuple[str, str]] = []
        self._by_key: dict[str, SandboxTransfer] = {}
        self._failed_once: set[str] = set()

    def paid(self) -> list[Transfer]:
        """The transfers that moved money to a beneficiary (settled PAID)."""
        return [t.transfer for t in self.transfers if t.state.state is SettlementState.PAID]

    async def transfer(self, transfer: Transfer) -> TransferReceipt:
        self.calls.append(("transfer", transfer.transfer_key))
        await self._arrive()
        # No await from here to the return: concurrent repeats cannot both transfer.
        seen = self._by_key.get(transfer.transfer_key)
        if seen is not None:
            if seen.transfer != transfer:
                raise ValueError("transfer key reused for a different transfer")
            return self._answer(seen.receipt)
        account = transfer.destination.account
        refused = _REFUSED_AT_ONCE.get(account)
        if refused is not None:
            receipt = TransferReceipt(TransferOutcome.REFUSED, failure_reason=refused)
            state = TransferState(SettlementState.FAILED, refused)
        else:
            receipt = TransferReceipt(TransferOutcome.ACCEPTED, bank_reference=_bank_reference())
            state = TransferState(SettlementState.PROCESSING)
        received = SandboxTransfer(transfer, receipt, state)
        self._by_key[transfer.transfer_key] = received
        self.transfers.append(received)
        return self._answer(receipt)

    async def transfer_state(self, *, transfer_key: str) -> TransferState | None:
        self.calls.append(("transfer_state", transfer_key))
        await self._arrive()
        seen = self._by_key.get(transfer_key)
        if seen is None:
            return self._answer(None)
        if seen.state.state is SettlementState.PROCESSING:
            seen.state = self._settle(seen.transfer.destination.account)
        return self._answer(seen.state)

    def _settle(self, account: str) -> TransferState:
        if account == SANDBOX_BLOCKED_IBAN:
            return TransferState(SettlementState.FAILED, "ACCOUNT_BLOCKED")
        if account == SANDBOX_RETURNED_IBAN:
            return TransferState(SettlementState.RETURNED, "RETURNED_BY_BENEFICIARY_BANK")
        if account in _FLAKY and account not in self._failed_once:
            self._failed_once.add(account)
            return TransferState(SettlementState.FAILED, TECHNICAL_ERROR, retryable=True)
        return TransferState(SettlementState.PAID)

    async def _arrive(self) -> None:
        await asyncio.sleep(0)
        if not self.reachable:
            raise DisbursementUnavailable("sandbox: unreachable")

    def _answer(self, result: T) -> T:
        if self.answers_lost:
            raise DisbursementUnavailable("sandbox: the answer was lost on its way back")
        return result


def _bank_reference() -> str:
    return "SBXT-" + secrets.token_hex(8).upper()


BANK_NAMES = ("sandbox",)


def disbursement_bank_from_name(name: str) -> DisbursementBank:
    """The bank named by PAYMENT_DISBURSEMENT_BANK."""
    if name == "sandbox":
        return SandboxDisbursementBank()
    raise ValueError(f"PAYMENT_DISBURSEMENT_BANK must be one of: {', '.join(BANK_NAMES)}; got {name!r}")
