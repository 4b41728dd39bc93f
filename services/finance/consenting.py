"""A consent's life in the database: a bank asks, the citizen answers, time ends it. Each
change is one transaction with its access log entry and its event."""

from __future__ import annotations

import uuid
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.finance.v1 import events_pb2, finance_pb2
from services.finance import access, access_log, convert, notices
from services.finance.catalogue import Institution
from services.finance.consents import Action, ConsentRefused, Status, Terms, effective_status, next_status
from services.finance.documents import consent_artefact
from services.finance.tables import ConsentRow, runtime_tables
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.enums import proto_value
from services.runtime.events import add_event
from services.runtime.signing import Ed25519Signer

SOURCE = "finance"

# The access log's action for each change of a citizen's.
_LOGGED = {
    Action.APPROVE: "CONSENT_APPROVED",
    Action.REJECT: "CONSENT_REJECTED",
    Action.PAUSE: "CONSENT_PAUSED",
    Action.RESUME: "CONSENT_RESUMED",
    Action.REVOKE: "CONSENT_REVOKED",
    Action.EXPIRE: "CONSENT_EXPIRED",
}


def emit(session: Session, message: Message) -> None:
    add_event(session, runtime_tables.outbox, SOURCE, message)


def visible_consent(
    session: Session, principal: Principal, consent_id: str, *, for_update: bool = False
) -> ConsentRow:
    query = select(ConsentRow).where(ConsentRow.id == consent_id)
    consent = session.scalars(query.with_for_update() if for_update else query).first()
    if not access.may_see(principal, consent):
        raise access.consent_not_found(consent_id)
    assert consent is not None
    return consent


def create(
    session: Session, institution: Institution, terms: Terms, request_id: str, now: datetime
) -> ConsentRow:
    consent = ConsentRow(
        id=str(uuid.uuid4()),
        institution_code=institution.code,
        fin=terms.fin,
        purpose=terms.purpose,
        scopes=",".join(terms.scopes),
        period_start=terms.period_start,
        period_end=terms.period_end,
        kind=terms.kind.value,
        frequency=terms.frequency.value if terms.frequency else None,
        expire_at=terms.expire_at,
        status=Status.PENDING.value,
        created_at=now,
        updated_at=now,
        fetch_count=0,
    )
    session.add(consent)
    session.flush()
    access_log.append(session, consent, "CONSENT_REQUESTED", now, request_id)
    emit(
        session,
        events_pb2.ConsentRequested(
            consent_id=consent.id,
            fin=consent.fin,
            institution_code=consent.institution_code,
            institution_name=institution.name,
            purpose=proto_value(finance_pb2.Purpose, "PURPOSE_", consent.purpose),
            scopes=convert.scope_values(consent.scope_names),
            kind=proto_value(finance_pb2.ConsentKind, "CONSENT_KIND_", consent.kind),
            expire_time=protos.timestamp(consent.expire_at),
            summary=convert.localized(convert.summary_of(consent)),
            request_time=protos.timestamp(now),
        ),
    )
    notices.consent_requested(session, consent, now)
    return consent


def change(
    session: Session,
    consent: ConsentRow,
    *,
    action: Action,
    now: datetime,
    request_id: str,
    signer: Ed25519Signer,
) -> None:
    """A citizen's answer or change. A consent whose time has ended refuses it as EXPIRED,
    whatever the sweeper has written yet."""
    current = effective_status(Status(consent.status), consent.expire_at, now)
    if current is Status.EXPIRED and consent.status != Status.EXPIRED:
        # Refused below; the sweeper records the expiry in its own transaction.
        raise ConsentRefused(
            reason="CONSENT_EXPIRED",
            message="The consent has expired: it cannot be changed.",
            metadata=(("status", Status.EXPIRED.value), ("action", action.value)),
        )
    consent.status = next_status(current, action).value
    consent.updated_at = now
    if action is Action.APPROVE:
        consent.approved_at = now
        artefact = consent_artefact(
            signer,
            consent_id=consent.id,
            institution_code=consent.institution_code,
            fin=consent.fin,
            purpose=consent.purpose,
            scopes=consent.scope_names,
            period=(consent.period_start, consent.period_end),
            kind=consent.kind,
            frequency=consent.frequency,
            approved_at=now,
            expire_at=consent.expire_at,
        )
        consent.artefact_content = artefact.content
        consent.artefact_signature = artefact.signature
        consent.artefact_key_id = artefact.key_id
    access_log.append(session, consent, _LOGGED[action], now, request_id)
    event = _event(consent, action, now)
    if event is not None:  # every change the bank can follow; EXPIRE has its own event
        emit(session, event)


def _event(consent: ConsentRow, action: Action, now: datetime) -> Message | None:
    common = {"consent_id": consent.id, "fin": consent.fin, "institution_code": consent.institution_code}
    at = protos.timestamp(now)
    if action is Action.APPROVE:
        return events_pb2.ConsentApproved(**common, approve_time=at)
    if action is Action.REJECT:
        return events_pb2.ConsentRejected(**common, reject_time=at)
    if action is Action.PAUSE:
        return events_pb2.ConsentPaused(**common, pause_time=at)
    if action is Action.RESUME:
        return events_pb2.ConsentResumed(**common, resume_time=at)
    if action is Action.REVOKE:
        return events_pb2.ConsentRevoked(**common, revoke_time=at)
    return None


def expire_due(session: Session, now: datetime, limit: int = 500) -> list[tuple[str, float]]:
    """Moves pending, active and paused consents whose expiry has come to EXPIRED, each with its
    log entry and ConsentExpired event; returns (previous status, age in seconds) of each.
    Rows another replica is sweeping are skipped."""
    due = session.scalars(
        select(ConsentRow)
        .where(
            ConsentRow.status.in_([s.value for s in (Status.PENDING, Status.ACTIVE, Status.PAUSED)]),
            ConsentRow.expire_at <= now,
        )
        .order_by(ConsentRow.expire_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    expired: list[tuple[str, float]] = []
    for consent in due:
        previous = consent.status
        consent.status = next_status(Status(previous), Action.EXPIRE).value
        consent.updated_at = now
        # Named by the sweep, not by a caller: uuid5 of the consent makes it stable.
        sweep_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"finance/expire/{consent.id}"))
        access_log.append(session, consent, "CONSENT_EXPIRED", now, sweep_id)
        emit(
            session,
            events_pb2.ConsentExpired(
                consent_id=consent.id,
                fin=consent.fin,
                institution_code=consent.institution_code,
                previous_status=proto_value(finance_pb2.ConsentStatus, "CONSENT_STATUS_", previous),
                expire_time=protos.timestamp(consent.expire_at),
            ),
        )
        expired.append((previous, (now - consent.created_at).total_seconds()))
    return expired
