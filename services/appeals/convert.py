"""Rows and domain values to API messages."""

from __future__ import annotations

import json
from collections.abc import Sequence

from asan.appeals.v1 import appeals_pb2
from services.appeals.catalogue import Agency, AttributeDefinition, Category, Names
from services.appeals.deadlines import Clock
from services.appeals.tables import AppealRow, HistoryRow
from services.runtime.enums import proto_value
from services.runtime.holidays import Holiday
from services.runtime.protos import money, proto_date, timestamp


def names(value: Names) -> appeals_pb2.LocalizedText:
    return appeals_pb2.LocalizedText(az=value.az, en=value.en, ru=value.ru)


def agency(value: Agency, version: int) -> appeals_pb2.Agency:
    return appeals_pb2.Agency(
        code=value.code, name=names(value.name), supervisor_subjects=value.supervisors, version=version
    )


def attribute(value: AttributeDefinition) -> appeals_pb2.AttributeDefinition:
    return appeals_pb2.AttributeDefinition(
        code=value.code,
        name=names(value.name),
        type=proto_value(appeals_pb2.AttributeType, "ATTRIBUTE_TYPE_", value.type),
        required=value.required,
        choices=[appeals_pb2.AttributeChoice(key=c.key, name=names(c.name)) for c in value.choices],
    )


def category(value: Category, version: int) -> appeals_pb2.Category:
    return appeals_pb2.Category(
        code=value.code,
        name=names(value.name),
        agency_code=value.agency_code,
        attributes=[attribute(a) for a in value.attributes],
        active=value.active,
        version=version,
    )


def status(value: str) -> appeals_pb2.AppealStatus.ValueType:
    return proto_value(appeals_pb2.AppealStatus, "APPEAL_STATUS_", value)


def history_entry(row: HistoryRow) -> appeals_pb2.HistoryEntry:
    return appeals_pb2.HistoryEntry(
        action=proto_value(appeals_pb2.HistoryAction, "HISTORY_ACTION_", row.action),
        time=timestamp(row.at),
        status=status(row.status),
        agency_code=row.agency_code,
        actor=row.actor,
        note=row.note,
        due_date=proto_date(row.due_date),
    )


def appeal(row: AppealRow, *, for_officer: bool, with_history: bool = True) -> appeals_pb2.Appeal:
    """The appeal as its reader sees it: repeat candidates are the officer's, not the citizen's."""
    message = appeals_pb2.Appeal(
        appeal_number=row.number,
        category_code=row.category_code,
        category_version=row.category_version,
        text=row.text,
        attributes=[
            appeals_pb2.AttributeValue(code=code, values=values)
            for code, values in json.loads(row.attributes).items()
        ],
        citizen_fin=row.citizen_fin,
        status=status(row.status),
        agency_code=row.agency_code,
        executor=row.executor or "",
        register_time=timestamp(row.registered_at),
        receive_time=timestamp(row.received_at),
        due_date=proto_date(row.due_date),
        due_time=timestamp(row.due_at),
        term_working_days=_term(row),
        overdue=row.overdue,
        escalated=row.escalated,
        outcome=proto_value(appeals_pb2.Outcome, "OUTCOME_", row.outcome),
        answer_text=row.answer_text or "",
        answer_time=timestamp(row.answered_at),
        rating=proto_value(appeals_pb2.Rating, "RATING_", row.rating),
        similar_appeal_numbers=json.loads(row.similar_numbers) if for_officer else [],
        copy_of=row.copy_of or "",
        history=[history_entry(h) for h in row.history] if with_history else [],
        publish=row.published,
        attachments=[
            appeals_pb2.Attachment(
                file_name=a.file_name, content_type=a.content_type, size_bytes=a.size_bytes
            )
            for a in row.attachments
        ],
    )
    if row.latitude_e6 is not None and row.longitude_e6 is not None:
        message.location.CopyFrom(
            appeals_pb2.Location(
                latitude_e6=row.latitude_e6, longitude_e6=row.longitude_e6, address=row.address or ""
            )
        )
    if row.linked_service and row.linked_object_id:
        message.linked_object.CopyFrom(linked_object(row.linked_service, row.linked_object_id))
    if row.refund_id and row.refund_status and row.refund_amount_minor is not None:
        message.refund.CopyFrom(
            appeals_pb2.AnswerRefund(
                payment_id=row.linked_object_id or "",
                refund_id=row.refund_id,
                amount=money(row.refund_amount_minor, row.refund_currency or ""),
                reason=row.refund_reason or "",
                status=proto_value(appeals_pb2.RefundStatus, "REFUND_STATUS_", row.refund_status),
            )
        )
    return message


def linked_object(service: str, object_id: str) -> appeals_pb2.LinkedObject:
    return appeals_pb2.LinkedObject(
        service=proto_value(appeals_pb2.LinkedService, "LINKED_SERVICE_", service), object_id=object_id
    )


def _term(row: AppealRow) -> int:
    return Clock(row.received_date, row.study, row.extension_working_days).term_working_days


def holiday_calendar(year: int, holidays: Sequence[Holiday]) -> appeals_pb2.HolidayCalendar:
    return appeals_pb2.HolidayCalendar(
        year=year, holidays=[appeals_pb2.Holiday(date=proto_date(h.day), name=h.name) for h in holidays]
    )
