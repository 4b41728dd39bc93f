"""The work on an appeal, each step one unit of work in the caller's transaction: registering it,
and every move of the workflow (assign, forward, extend, answer, leave unconsidered, rate,
reopen, close). Each step locks the appeal's row, checks who acts (access) and the rules
(workflow, deadlines), changes the row, adds the entry of its history the citizen reads, and
adds its event to the outbox in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from google.protobuf.message import Message
from sqlalchemy.orm import Session

from asan.appeals.v1 import appeals_pb2, events_pb2
from services.appeals import access, convert, notices, queries, similarity
from services.appeals.attachments import CheckedAttachment
from services.appeals.catalogue import Names
from services.appeals.content import AppealContent, LinkedObject, LinkedService, Location
from services.appeals.deadlines import (
    Clock,
    answered_on_time,
    due_time,
    working_days_to_answer,
)
from services.appeals.requests import (
    Answer,
    Assignment,
    Extension,
    Forwarding,
    RatingGiven,
    Reopening,
    Unconsidered,
)
from services.appeals.tables import AppealRow, AttachmentRow, HistoryRow, notice_tables, runtime_tables
from services.appeals.workflow import (
    Action,
    AppealStatus,
    EarlierAnswer,
    Rating,
    ensure_before_due,
    ensure_forward_window,
    ensure_may_reopen,
    ensure_other_agency,
    ensure_reopen_window,
    ensure_repeat_rule,
    ensure_unrated,
    extended,
    status_after,
)
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.baku_time import baku_date
from services.runtime.enums import proto_value
from services.runtime.events import add_event
from services.runtime.notices import add_notice
from services.runtime.validation import Violations

SERVICE = "appeals"
# The service itself, as the history names it when no person acted (the deadline sweeps).
SYSTEM_ACTOR = "ASAN müraciət"


@dataclass
class Changed:
    """An appeal after a step, and what the step did that the metrics count."""

    appeal: AppealRow
    answered: bool = False
    registered: list[AppealRow] = field(default_factory=list)


# --- Shared by every step ----------------------------------------------------------------------


def record(
    row: AppealRow, action: str, actor: str, at: datetime, note: str = "", *, due: date | None = None
) -> None:
    """Adds the history entry the citizen reads; open appeals show their due date."""
    shown_due = due or (row.due_date if AppealStatus(row.status) in _DUE_SHOWN else None)
    row.history.append(
        HistoryRow(
            position=len(row.history),
            at=at,
            action=action,
            status=row.status,
            agency_code=row.agency_code,
            actor=actor,
            note=note,
            due_date=shown_due,
        )
    )


_DUE_SHOWN = frozenset({AppealStatus.REGISTERED, AppealStatus.ASSIGNED, AppealStatus.REOPENED})


def tell(session: Session, row: AppealRow, told: notices.Told, now: datetime) -> events_pb2.AppealNotice:
    """Tells the citizen of the step: the CitizenNotice on the notices exchange, once per step
    (the history entry it follows), and the AppealNotice the step's event carries."""
    add_notice(
        session,
        notice_tables,
        told.kind,
        fin=row.citizen_fin,
        resource_name=f"appeals/{row.number}",
        occasion=f"history/{len(row.history) - 1}",
        facts=told.facts,
        action_uri=f"/v1/appeals/{row.number}",
        now=now,
    )
    return events_pb2.AppealNotice(
        citizen_fin=row.citizen_fin,
        appeal_number=row.number,
        status=convert.status(row.status),
        due_date=protos.proto_date(row.due_date) if AppealStatus(row.status) in _DUE_SHOWN else None,
        text=convert.names(told.text),
    )


def emit(session: Session, message: Message) -> None:
    add_event(session, runtime_tables.outbox, SERVICE, message)


def agency_names(session: Session, code: str) -> Names:
    row = queries.current_agency_row(session, code)
    return queries.agency(row).name if row else Names(code)


def restart_clock(row: AppealRow, received_at: datetime, holidays: set[date]) -> None:
    """The agency that has the appeal now received it at `received_at`: its 15 working days run
    from that day, and nothing of an earlier clock carries over."""
    clock = Clock(baku_date(received_at))
    row.received_at = received_at
    row.received_date = clock.received
    row.study = False
    row.extension_working_days = 0
    _set_due(row, clock.due_date(holidays))
    row.overdue = False


def _set_due(row: AppealRow, due: date) -> None:
    row.due_date = due
    row.due_at = due_time(due)


def _appeal_to_act_on(session: Session, principal: Principal, number: str) -> AppealRow:
    row = queries.appeal_by_number(session, number, for_update=True)
    return access.ensure_visible(principal, row, number)


def _unknown_agency(field_path: str) -> None:
    violations = Violations()
    violations.add(field_path, "No agency has this code; ListAgencies lists them.", "UNKNOWN_AGENCY")
    violations.raise_if_any()


# --- Registration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """What registration needs from the checks made before the other service was asked."""

    category_version: int
    agency_code: str
    answers: Mapping[str, Sequence[str]]


def register(
    session: Session,
    citizen_fin: str,
    content: AppealContent,
    checked: Checked,
    now: datetime,
    *,
    actor: str = "citizen",
    copy_of: str | None = None,
) -> AppealRow:
    """A new appeal at the category's agency: its number, its 15 working days, the citizen's
    similar earlier appeals for the officer, the first history entry and AppealRegistered."""
    today = baku_date(now)
    holidays = queries.holidays_around(session, today)
    number = f"MR-{today.year}-{queries.next_number(session, today.year):06d}"
    similar = similarity.similar_appeals(
        content.text,
        queries.earlier_texts(session, citizen_fin, content.category_code, similarity.MAX_COMPARED),
    )
    clock = Clock(today)
    due = clock.due_date(holidays)
    row = AppealRow(
        id=str(uuid.uuid4()),
        number=number,
        citizen_fin=citizen_fin,
        category_code=content.category_code,
        category_version=checked.category_version,
        text=content.text,
        normalised_text=similarity.normalised(content.text),
        attributes=json.dumps(dict(checked.answers), ensure_ascii=False),
        latitude_e6=content.location.latitude_e6 if content.location else None,
        longitude_e6=content.location.longitude_e6 if content.location else None,
        address=content.location.address if content.location else None,
        linked_service=content.linked_object.service.value if content.linked_object else None,
        linked_object_id=content.linked_object.object_id if content.linked_object else None,
        status=AppealStatus.REGISTERED.value,
        agency_code=checked.agency_code,
        executor=None,
        registered_at=now,
        received_at=now,
        received_date=today,
        study=False,
        extension_working_days=0,
        due_date=due,
        due_at=due_time(due),
        overdue=False,
        escalated=False,
        reopened=False,
        similar_numbers=json.dumps(similar),
        copy_of=copy_of,
        published=content.publish,
        history=[],
        attachments=[
            AttachmentRow(
                position=position,
                file_name=a.file_name,
                content_type=a.content_type,
                size_bytes=len(a.content),
                content=a.content,
            )
            for position, a in enumerate(content.attachments)
        ],
    )
    session.add(row)
    record(row, "REGISTERED", actor, now, f"copy of {copy_of}" if copy_of else "")
    session.flush()
    registered = events_pb2.AppealRegistered(
        appeal_number=number,
        category_code=row.category_code,
        agency_code=row.agency_code,
        register_time=protos.timestamp(now),
        due_date=protos.proto_date(due),
        copy_of=copy_of or "",
        notice=tell(
            session, row, notices.registered(number, agency_names(session, row.agency_code), due), now
        ),
    )
    if row.linked_service and row.linked_object_id:
        registered.linked_object.CopyFrom(convert.linked_object(row.linked_service, row.linked_object_id))
    emit(session, registered)
    return row


# --- The agency's steps ------------------------------------------------------------------------


def assign(session: Session, principal: Principal, change: Assignment, now: datetime) -> Changed:
    row = _appeal_to_act_on(session, principal, change.number)
    access.ensure_agency_officer(principal, row)
    row.status = status_after(Action.ASSIGN, AppealStatus(row.status)).value
    row.executor = change.executor or principal.subject
    record(row, "ASSIGNED", _actor(session, principal, row), now)
    emit(
        session,
        events_pb2.AppealAssigned(
            appeal_number=row.number,
            agency_code=row.agency_code,
            executor=row.executor,
            assign_time=protos.timestamp(now),
        ),
    )
    return Changed(row)


def forward(session: Session, principal: Principal, change: Forwarding, now: datetime) -> Changed:
    """To the competent agency within 3 working days of the receipt, copies to further ones; the
    receiving agencies' time runs from now (Art. 7.10)."""
    row = _appeal_to_act_on(session, principal, change.number)
    access.ensure_agency_officer(principal, row)
    status_after(Action.FORWARD, AppealStatus(row.status))
    ensure_other_agency(row.agency_code, change.agency_code)
    for path, code in [("agency_code", change.agency_code)] + [
        (f"copy_agency_codes[{i}]", c) for i, c in enumerate(change.copy_agency_codes)
    ]:
        if queries.current_agency_row(session, code) is None:
            _unknown_agency(path)
    today = baku_date(now)
    holidays = queries.holidays_around(session, today)
    ensure_forward_window(row.received_date, today, holidays)
    actor = _actor(session, principal, row)
    source = row.agency_code
    copies = [_copy(session, row, code, actor, now) for code in change.copy_agency_codes]
    for copy in copies:
        record(row, "COPIED", actor, now, f"{copy.number} to {copy.agency_code}")
    row.agency_code = change.agency_code
    row.executor = None
    row.escalated = False
    row.status = AppealStatus.REGISTERED.value
    restart_clock(row, now, holidays)
    record(row, "FORWARDED", actor, now, change.reason)
    emit(
        session,
        events_pb2.AppealForwarded(
            appeal_number=row.number,
            from_agency_code=source,
            to_agency_code=row.agency_code,
            reason=change.reason,
            forward_time=protos.timestamp(now),
            due_date=protos.proto_date(row.due_date),
            copy_appeal_numbers=[copy.number for copy in copies],
            notice=tell(
                session,
                row,
                notices.forwarded(
                    row.number, agency_names(session, row.agency_code), row.due_date, change.reason
                ),
                now,
            ),
        ),
    )
    return Changed(row, registered=copies)


def _copy(session: Session, original: AppealRow, agency_code: str, actor: str, now: datetime) -> AppealRow:
    """A copy for a further competent agency: the same appeal under its own number and clock."""
    location = None
    if original.latitude_e6 is not None and original.longitude_e6 is not None:
        location = Location(original.latitude_e6, original.longitude_e6, original.address or "")
    linked = None
    if original.linked_service and original.linked_object_id:
        linked = LinkedObject(LinkedService(original.linked_service), original.linked_object_id)
    files = [CheckedAttachment(a.file_name, a.content_type, a.content) for a in original.attachments]
    content = AppealContent(
        original.category_code, original.text, [], location, linked, original.published, files
    )
    checked = Checked(original.category_version, agency_code, json.loads(original.attributes))
    return register(
        session, original.citizen_fin, content, checked, now, actor=actor, copy_of=original.number
    )


def extend(session: Session, principal: Principal, change: Extension, now: datetime) -> Changed:
    """Additional study or the one extension, each once, before the time runs out; the citizen
    is told with the reason (Art. 10)."""
    row = _appeal_to_act_on(session, principal, change.number)
    access.ensure_agency_officer(principal, row)
    status_after(Action.EXTEND, AppealStatus(row.status))
    ensure_before_due(row.due_at, now)
    clock = extended(
        Clock(row.received_date, row.study, row.extension_working_days), change.kind, change.working_days
    )
    row.study = clock.study
    row.extension_working_days = clock.extension_working_days
    _set_due(row, clock.due_date(queries.holidays_around(session, row.received_date)))
    record(row, "EXTENDED", _actor(session, principal, row), now, change.reason)
    emit(
        session,
        events_pb2.AppealExtended(
            appeal_number=row.number,
            agency_code=row.agency_code,
            kind=proto_value(appeals_pb2.ExtensionKind, "EXTENSION_KIND_", change.kind),
            term_working_days=clock.term_working_days,
            reason=change.reason,
            due_date=protos.proto_date(row.due_date),
            notice=tell(session, row, notices.extended(row.number, row.due_date, change.reason), now),
        ),
    )
    return Changed(row)


def answer(session: Session, principal: Principal, change: Answer, now: datetime) -> Changed:
    row = _appeal_to_act_on(session, principal, change.number)
    access.ensure_agency_officer(principal, row)
    row.status = status_after(Action.ANSWER, AppealStatus(row.status)).value
    _answered(session, row, now)
    row.outcome = change.outcome.value
    row.answer_text = change.text
    # A reopened appeal's new answer is rated anew.
    row.rating = None
    row.rating_comment = None
    record(row, "ANSWERED", _actor(session, principal, row), now, change.outcome.value)
    emit(
        session,
        events_pb2.AppealAnswered(
            appeal_number=row.number,
            agency_code=row.agency_code,
            outcome=proto_value(appeals_pb2.Outcome, "OUTCOME_", change.outcome),
            answer_time=protos.timestamp(now),
            on_time=bool(row.answered_on_time),
            working_days_to_answer=row.answer_working_days or 0,
            notice=tell(session, row, notices.answered(row.number), now),
        ),
    )
    return Changed(row, answered=True)


def _answered(session: Session, row: AppealRow, now: datetime) -> None:
    today = baku_date(now)
    row.answered_at = now
    row.answered_on_time = answered_on_time(now, row.due_at)
    row.answer_working_days = working_days_to_answer(
        row.received_date, today, queries.holidays_around(session, today)
    )


def leave_unconsidered(
    session: Session, principal: Principal, change: Unconsidered, now: datetime
) -> Changed:
    """The repeat rule (Art. 8.1.4), checked on the earlier appeals the officer names."""
    row = _appeal_to_act_on(session, principal, change.number)
    access.ensure_agency_officer(principal, row)
    target = status_after(Action.LEAVE_UNCONSIDERED, AppealStatus(row.status))
    found = {
        earlier.number: earlier for earlier in queries.appeals_by_numbers(session, change.earlier_numbers)
    }
    violations = Violations()
    for index, number in enumerate(change.earlier_numbers):
        violations.check(
            number in found,
            f"earlier_appeal_numbers[{index}]",
            "No appeal has this number.",
            "UNKNOWN_APPEAL",
        )
    violations.raise_if_any()
    earlier = [
        EarlierAnswer(
            number=e.number,
            citizen_fin=e.citizen_fin,
            category_code=e.category_code,
            status=AppealStatus(e.status),
            answered=baku_date(e.answered_at) if e.answered_at and e.outcome else None,
        )
        for e in found.values()
    ]
    ensure_repeat_rule(row.citizen_fin, row.category_code, earlier, baku_date(now))
    row.status = target.value
    _answered(session, row, now)
    row.answer_text = change.reason
    listed = list(change.earlier_numbers)
    record(
        row,
        "LEFT_UNCONSIDERED",
        _actor(session, principal, row),
        now,
        f"{change.reason} ({', '.join(listed)})",
    )
    emit(
        session,
        events_pb2.AppealLeftUnconsidered(
            appeal_number=row.number,
            agency_code=row.agency_code,
            earlier_appeal_numbers=listed,
            reason=change.reason,
            decide_time=protos.timestamp(now),
            notice=tell(session, row, notices.left_unconsidered(row.number, listed), now),
        ),
    )
    return Changed(row, answered=True)


def close(session: Session, principal: Principal, number: str, now: datetime) -> Changed:
    row = _appeal_to_act_on(session, principal, number)
    access.ensure_agency_officer(principal, row)
    row.status = status_after(Action.CLOSE, AppealStatus(row.status)).value
    _closed(session, row, _actor(session, principal, row), now)
    return Changed(row)


def close_unreopened(session: Session, row: AppealRow, now: datetime) -> None:
    """Closes an answer the citizen may no longer reopen: its window has passed."""
    row.status = status_after(Action.CLOSE, AppealStatus(row.status)).value
    _closed(session, row, SYSTEM_ACTOR, now)


def _closed(session: Session, row: AppealRow, actor: str, now: datetime) -> None:
    row.closed_at = now
    record(row, "CLOSED", actor, now)
    emit(
        session,
        events_pb2.AppealClosed(
            appeal_number=row.number,
            agency_code=row.agency_code,
            close_time=protos.timestamp(now),
            notice=tell(session, row, notices.closed(row.number), now),
        ),
    )


# --- The citizen's steps ----------------------------------------------------------------------


def rate(session: Session, principal: Principal, change: RatingGiven, now: datetime) -> Changed:
    """Once per answer; a satisfied citizen's appeal closes."""
    row = _appeal_to_act_on(session, principal, change.number)
    access.ensure_author(principal, row)
    status = AppealStatus(row.status)
    target = status_after(Action.RATE, status, change.rating)
    ensure_unrated(Rating(row.rating) if row.rating else None)
    row.rating = change.rating.value
    row.rating_comment = change.comment or None
    record(row, "RATED", "citizen", now, change.rating.value)
    emit(
        session,
        events_pb2.AppealAnswerRated(
            appeal_number=row.number,
            agency_code=row.agency_code,
            rating=proto_value(appeals_pb2.Rating, "RATING_", change.rating),
            rate_time=protos.timestamp(now),
        ),
    )
    if target is not status:
        row.status = target.value
        _closed(session, row, "citizen", now)
    return Changed(row)


def reopen(session: Session, principal: Principal, change: Reopening, now: datetime) -> Changed:
    """Within 30 days of an answer rated unsatisfactory, once: escalated to the agency's
    supervisors, and due in 15 working days from now."""
    row = _appeal_to_act_on(session, principal, change.number)
    access.ensure_author(principal, row)
    today = baku_date(now)
    if row.status == AppealStatus.CLOSED.value and row.answered_at is not None:
        ensure_reopen_window(baku_date(row.answered_at), today)
    target = status_after(Action.REOPEN, AppealStatus(row.status))
    assert row.answered_at is not None  # every ANSWERED appeal has its answer's time
    ensure_may_reopen(
        Rating(row.rating) if row.rating else None, row.reopened, baku_date(row.answered_at), today
    )
    row.status = target.value
    row.reopened = True
    row.escalated = True
    restart_clock(row, now, queries.holidays_around(session, today))
    record(row, "REOPENED", "citizen", now, change.reason)
    emit(
        session,
        events_pb2.AppealReopened(
            appeal_number=row.number,
            agency_code=row.agency_code,
            reason=change.reason,
            reopen_time=protos.timestamp(now),
            due_date=protos.proto_date(row.due_date),
            supervisor_subjects=queries.supervisors_of(session, row.agency_code),
            notice=tell(session, row, notices.reopened(row.number, row.due_date), now),
        ),
    )
    return Changed(row)


def _actor(session: Session, principal: Principal, row: AppealRow) -> str:
    return access.actor(principal, queries.supervisors_of(session, row.agency_code))
