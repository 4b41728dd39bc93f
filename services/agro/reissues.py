"""An officer re-issues a payout leg failed for good (RetryPayoutLeg): "a failed leg is retried
or shown to the officer, never paid twice".

A leg that payment refused for good (a closed account, a blocked card), or that agro's payout
flow has retried AGRO_PAYOUT_MAX_ATTEMPTS times, is not sent again by itself: its payout at
payment stays FAILED. Once the farmer's accounts are corrected (ChangeFarmerAccounts), the
officer re-issues it, in one transaction: the replaced payout is kept in payout_leg_reissues,
and the leg is PENDING again under the request_id of its next re-issue (a uuid5 of the
declaration, the leg and the re-issue number, services/agro/numbers.py). The payout flow
(services/agro/payouts.py) then sends it with CreatePayout as a new payout, to the farmer's
account as it is then, like any PENDING leg; so:

- a crash after payment created it and before agro recorded the answer re-sends the same
  request_id, which payment answers with the same payout: never a second one;
- a late event of the replaced payout names the replaced request_id, which finds no leg
  (services/agro/payout_legs.py): it cannot mark the new one;
- a second re-issue (another officer, another request_id) finds the leg no longer FAILED and
  is refused: one re-issue, one payout;
- once paid, the declaration is PAID with SubsidyPaid and the farmer's notice, once, as for
  any leg.

Pure rules and rows: nothing here calls payment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from services.agro import queries
from services.agro.numbers import payout_request_id_for
from services.agro.payout_legs import LegStatus, awaits_officer
from services.agro.tables import DeclarationRow, PayoutLegReissueRow, PayoutLegRow
from services.runtime.errors import FailedPrecondition


def reissue(
    session: Session,
    declaration: DeclarationRow,
    leg_name: str,
    *,
    max_attempts: int,
    now: datetime,
    reissued_by: str,
) -> PayoutLegRow:
    """The leg, PENDING again as a new payout; FAILED_PRECONDITION unless it awaits the officer.
    `declaration` is locked by the caller."""
    leg = queries.payout_leg(session, declaration.id, leg_name)
    if leg is None:
        raise FailedPrecondition(
            message=(
                f"Declaration {declaration.number} has no {leg_name} payout leg: "
                f"it is {declaration.status.lower()}, and legs are made at approval (none of 0 qəpik)."
            ),
            reason="PAYOUT_LEG_NOT_FOUND",
            metadata={
                "declaration_number": declaration.number,
                "leg": leg_name,
                "status": declaration.status,
            },
        )
    if not awaits_officer(leg, max_attempts):
        raise _not_failed_for_good(declaration, leg, max_attempts)
    number = leg.reissue + 1
    session.add(
        PayoutLegReissueRow(
            declaration_id=leg.declaration_id,
            leg=leg.leg,
            reissue=number,
            replaced_request_id=leg.request_id,
            replaced_payout_id=leg.payout_id,
            replaced_attempt=leg.attempt,
            failure_reason=leg.failure_reason,
            destination_account=leg.destination_account,
            reissued_at=now,
            reissued_by=reissued_by,
        )
    )
    leg.reissue = number
    leg.request_id = payout_request_id_for(leg.declaration_id, leg.leg, number)
    leg.status = LegStatus.PENDING.value
    leg.payout_id = None
    leg.attempt = 0
    leg.failure_reason = None
    leg.retryable = False
    leg.destination_account = None
    leg.updated_at = now
    session.flush()
    return leg


def _not_failed_for_good(
    declaration: DeclarationRow, leg: PayoutLegRow, max_attempts: int
) -> FailedPrecondition:
    metadata = {"declaration_number": declaration.number, "leg": leg.leg, "leg_status": leg.status}
    if leg.status == LegStatus.FAILED:  # retryable, with attempts left
        return FailedPrecondition(
            message=(
                f"The {leg.leg} leg of declaration {declaration.number} failed with "
                f"{leg.failure_reason or 'a technical error'}, which payment retries: agro sends it again by "
                f"itself (attempt {leg.attempt} of {max_attempts}). Re-issue it only if that fails too."
            ),
            reason="PAYOUT_LEG_RETRYING",
            metadata=metadata | {"attempt": str(leg.attempt), "max_attempts": str(max_attempts)},
        )
    what = {
        LegStatus.PENDING: "waiting to be sent to payment",
        LegStatus.SENT: "at payment, waiting for the bank",
        LegStatus.PAID: "paid",
    }[LegStatus(leg.status)]
    return FailedPrecondition(
        message=(
            f"The {leg.leg} leg of declaration {declaration.number} is {what}: only a leg failed for good "
            "can be re-issued."
        ),
        reason="PAYOUT_LEG_NOT_FAILED",
        metadata=metadata,
    )
