"""The open Open311 GeoReport v2 view (wiki.open311.org/GeoReport_v2), read-only: the active
categories as services (with their attributes as service definitions) and the public appeals as
service requests. An appeal is public when its citizen chose so at submission, and even then
nothing personal leaves here: no FIN, no text, no executor; the category, the status, the
agency, the dates, the address and the location.

Each function is one unit of work on the appeals database and answers with the API message; the
gateway sends the lists as the spec's top-level arrays, under the spec's field names.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import struct_pb2
from sqlalchemy.orm import Session

from asan.appeals.v1 import georeport_pb2
from services.appeals import queries
from services.appeals.catalogue import AttributeType, Category
from services.appeals.deadlines import ANSWER_WORKING_DAYS
from services.appeals.tables import AppealRow
from services.appeals.workflow import OPEN_STATUSES, AppealStatus, Outcome
from services.runtime.baku_time import to_baku_iso
from services.runtime.errors import NotFound

DATATYPES: Mapping[AttributeType, str] = {
    AttributeType.STRING: "string",
    AttributeType.NUMBER: "number",
    AttributeType.DATETIME: "datetime",
    AttributeType.TEXT: "text",
    AttributeType.SINGLE_VALUE_LIST: "singlevaluelist",
    AttributeType.MULTI_VALUE_LIST: "multivaluelist",
}
STATUS_NOTES: Mapping[Outcome, str] = {
    Outcome.SATISFIED: "satisfied",
    Outcome.PARTLY_SATISFIED: "partly satisfied",
    Outcome.REJECTED: "rejected",
    Outcome.EXPLAINED: "explained",
}
SERVICE_NOTICE = (
    f"Answered within {ANSWER_WORKING_DAYS} working days of receipt (Law on citizens' appeals, Art. 10)."
)


def not_found(what: str, name: str) -> NotFound:
    return NotFound(message=f"No public {what} {name}.", reason="NOT_FOUND", metadata={what: name})


def services(session: Session) -> georeport_pb2.GeoReportServices:
    listed = []
    after = None
    while rows := queries.current_category_rows(session, None, after, 500):
        listed += [_service(queries.category(row)) for row in rows if row.active]
        after = rows[-1].code
    return georeport_pb2.GeoReportServices(services=listed)


def _service(category: Category) -> georeport_pb2.GeoReportService:
    return georeport_pb2.GeoReportService(
        service_code=category.code,
        service_name=category.name.az,
        description=category.name.en,
        metadata=bool(category.attributes),
        type="realtime",
        group=category.agency_code,
    )


def service_definition(session: Session, code: str) -> georeport_pb2.GeoReportServiceDefinition:
    row = queries.current_category_row(session, code)
    if row is None or not row.active:
        raise not_found("service_code", code)
    return georeport_pb2.GeoReportServiceDefinition(
        service_code=code,
        attributes=[
            georeport_pb2.GeoReportAttribute(
                variable=True,
                code=attribute.code,
                datatype=DATATYPES[attribute.type],
                required=attribute.required,
                datatype_description=attribute.name.en,
                order=order,
                description=attribute.name.az,
                values=[georeport_pb2.GeoReportValue(key=c.key, name=c.name.az) for c in attribute.choices],
            )
            for order, attribute in enumerate(queries.category(row).attributes, start=1)
        ],
    )


def requests(session: Session, where: queries.PublicFilter) -> georeport_pb2.GeoReportRequests:
    rows = queries.public_appeals(session, where)
    names = _category_names(session, {row.category_code for row in rows})
    return georeport_pb2.GeoReportRequests(requests=[_request(row, names) for row in rows])


def request(session: Session, number: str) -> georeport_pb2.GeoReportRequests:
    """One public appeal, as an array of one (the spec's shape); NOT_FOUND for any other."""
    row = queries.appeal_by_number(session, number)
    if row is None or not row.published:
        raise not_found("service_request_id", number)
    return georeport_pb2.GeoReportRequests(
        requests=[_request(row, _category_names(session, {row.category_code}))]
    )


def _category_names(session: Session, codes: set[str]) -> dict[str, str]:
    rows = (queries.current_category_row(session, code) for code in sorted(codes))
    return {row.code: row.name_az for row in rows if row is not None}


def _request(row: AppealRow, category_names: Mapping[str, str]) -> georeport_pb2.GeoReportRequest:
    status = AppealStatus(row.status)
    message = georeport_pb2.GeoReportRequest(
        service_request_id=row.number,
        status="open" if status in OPEN_STATUSES else "closed",
        status_notes=_status_notes(row, status),
        service_name=category_names.get(row.category_code, row.category_code),
        service_code=row.category_code,
        agency_responsible=row.agency_code,
        service_notice=SERVICE_NOTICE,
        requested_datetime=to_baku_iso(row.registered_at),
        updated_datetime=to_baku_iso(row.history[-1].at if row.history else row.registered_at),
        expected_datetime=to_baku_iso(row.due_at),
        address=row.address or "",
    )
    if row.latitude_e6 is not None and row.longitude_e6 is not None:
        message.latitude.CopyFrom(struct_pb2.Value(number_value=row.latitude_e6 / 1_000_000))
        message.longitude.CopyFrom(struct_pb2.Value(number_value=row.longitude_e6 / 1_000_000))
    return message


def _status_notes(row: AppealRow, status: AppealStatus) -> str:
    if status is AppealStatus.LEFT_UNCONSIDERED:
        return "left unconsidered"
    if status in OPEN_STATUSES or not row.outcome:
        return ""
    return STATUS_NOTES[Outcome(row.outcome)]
