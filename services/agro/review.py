"""Officers' review of a declaration: the monitored area (the monitoring rules apply by
themselves), approval with its payout legs, rejection with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from asan.agro.v1 import agro_pb2, events_pb2
from services.agro import access, convert, notices, queries
from services.agro import subsidy as rules
from services.agro.access import Officer
from services.agro.declaring import SOURCE
from services.agro.monitoring import outcome
from services.agro.numbers import payout_request_id_for
from services.agro.tables import DeclarationRow, PayoutLegRow, SeasonBanRow, runtime_tables
from services.runtime.errors import FailedPrecondition
from services.runtime.events import add_event
from services.runtime.protos import timestamp

CASH, CARD = "CASH", "CARD"


def declaration_in_reach(session: Session, officer: Officer, number: str) -> DeclarationRow:
    row = queries.declaration_by_number(session, number, for_update=True)
    if row is None or not officer.may_see(row.district):
        raise access.declaration_not_found(number)
    return row


def _not_submitted(row: DeclarationRow, action: str) -> FailedPrecondition:
    return FailedPrecondition(
        message=f"Declaration {row.number} is {row.status.lower()}: only a submitted one can be {action}.",
        reason="DECLARATION_DECIDED",
        metadata={"declaration_number": row.number, "status": row.status},
    )


def record_monitoring(session: Session, row: DeclarationRow, monitored_m2: int) -> agro_pb2.Declaration:
    """Recomputes the subsidy on the monitored area with its cut; over 50% off bans the farmer
    from the next season (a later, closer measurement lifts that ban again)."""
    if row.status != "SUBMITTED":
        raise _not_submitted(row, "monitored")
    result = outcome(row.area_m2, monitored_m2)
    farmer = queries.farmer(session, row.farmer_fin)
    assert farmer is not None  # a declaration's farmer is never deleted
    _version, table = queries.coefficient_table(session, row.season_year)
    crop = rules.Crop(row.crop)
    facts = rules.SowingFacts(repeat_sowing=row.campaign == "REPEAT", modern_irrigation=row.modern_irrigation)
    subsidy = rules.subsidy(
        rules.coefficient_for(table, crop, facts),
        crop,
        result.paid_area_square_metres,
        cooperative=farmer.kind == "COOPERATIVE",
        monitoring_cut_percent=result.cut_percent,
        monitoring_note=result.note,
    )
    row.monitored_m2 = monitored_m2
    row.subsidy = convert.subsidy(subsidy).SerializeToString()
    row.subsidy_qepik = subsidy.total_qepik
    next_season = row.season_year + 1
    session.execute(
        delete(SeasonBanRow).where(
            SeasonBanRow.farmer_fin == row.farmer_fin,
            SeasonBanRow.season_year == next_season,
            SeasonBanRow.declaration_number == row.number,
        )
    )
    if result.bans_next_season and queries.is_banned(session, row.farmer_fin, next_season) is None:
        session.add(
            SeasonBanRow(farmer_fin=row.farmer_fin, season_year=next_season, declaration_number=row.number)
        )
    session.flush()
    return convert.declaration(row)


@dataclass(frozen=True)
class Approved:
    response: agro_pb2.Declaration
    total_qepik: int
    legs: int


def approve(session: Session, row: DeclarationRow, *, now: datetime, decided_by: str) -> Approved:
    """SUBMITTED and monitored → APPROVED: the subsidy is fixed and its two legs (a quarter in
    cash, the rest on the card) wait for payment as PENDING; a leg of 0 qəpik is not made."""
    if row.status != "SUBMITTED":
        raise _not_submitted(row, "approved")
    if row.monitored_m2 is None:
        raise FailedPrecondition(
            message=f"Record the monitored area of declaration {row.number} before approving it.",
            reason="NOT_MONITORED",
            metadata={"declaration_number": row.number},
        )
    row.status = "APPROVED"
    row.decided_at = now
    row.decided_by = decided_by
    split = rules.payout_split(row.subsidy_qepik)
    legs = [
        PayoutLegRow(
            declaration_id=row.id,
            leg=leg,
            amount_qepik=amount,
            request_id=payout_request_id_for(row.id, leg),
            reissue=0,
            status="PENDING",
            attempt=0,
            retryable=False,
            created_at=now,
        )
        for leg, amount in ((CASH, split.cash_qepik), (CARD, split.card_qepik))
        if amount > 0
    ]
    session.add_all(legs)
    session.flush()
    add_event(
        session,
        runtime_tables.outbox,
        SOURCE,
        events_pb2.SubsidyApproved(
            declaration_number=row.number,
            farmer_fin=row.farmer_fin,
            total=convert.money(row.subsidy_qepik),
            cash_part=convert.money(split.cash_qepik),
            card_part=convert.money(split.card_qepik),
            approve_time=timestamp(now),
        ),
    )
    notices.subsidy_approved(session, row, cash_qepik=split.cash_qepik, card_qepik=split.card_qepik, now=now)
    response = convert.declaration(row, [convert.payout_leg(leg, awaits_officer=False) for leg in legs])
    return Approved(response, row.subsidy_qepik, len(legs))


def reject(
    session: Session, row: DeclarationRow, reason: str, *, now: datetime, decided_by: str
) -> agro_pb2.Declaration:
    """SUBMITTED → REJECTED: its area and contour no longer count against later declarations."""
    if row.status != "SUBMITTED":
        raise _not_submitted(row, "rejected")
    row.status = "REJECTED"
    row.rejection_reason = reason
    row.decided_at = now
    row.decided_by = decided_by
    session.flush()
    return convert.declaration(row)
