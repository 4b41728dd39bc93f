"""The AppealsService gRPC servicer. Each method reads: validate the request (requests),
authorise the caller (access), call the rule or the flow (reference, submission, casework,
open_statistics), and answer with the API message (convert)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.api import httpbody_pb2
from google.protobuf.message import Message
from sqlalchemy.orm import Session

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2, appeals_service_pb2_grpc, georeport_pb2
from asan.common.v1 import audit_pb2
from services.appeals import (
    access,
    casework,
    convert,
    georeport,
    open_statistics,
    queries,
    reference,
    requests,
)
from services.appeals.catalogue import check_agency_code, check_category_code
from services.appeals.metrics import AppealsMetrics
from services.appeals.submission import Submission
from services.appeals.tables import AppealRow, runtime_tables
from services.runtime.audit import list_audit_records
from services.runtime.auth import Principal
from services.runtime.context import principal_var
from services.runtime.db import Database, utcnow
from services.runtime.idempotency import Idempotency, idempotency_key
from services.runtime.interceptors import metadata_value, require_principal
from services.runtime.paging import (
    decode_keyset,
    decode_page_token,
    encode_keyset,
    encode_page_token,
    filter_fingerprint,
    page_size,
)
from services.runtime.validation import Violations

M = TypeVar("M", bound=Message)
Context = grpc.aio.ServicerContext[Any, Any]
# A step of the workflow: (session, now) -> the appeal after it.
Step = Callable[[Session, datetime], casework.Changed]


class AppealsServicer(appeals_service_pb2_grpc.AppealsServiceServicer):
    def __init__(
        self, database: Database, idempotency: Idempotency, submission: Submission, metrics: AppealsMetrics
    ) -> None:
        self.database = database
        self.idempotency = idempotency
        self.submission = submission
        self.metrics = metrics

    # --- The catalogue (anyone reads it; admins change it) -------------------------------------

    async def ListAgencies(
        self, request: appeals_service_pb2.ListAgenciesRequest, context: Context
    ) -> appeals_service_pb2.ListAgenciesResponse:
        violations = Violations()
        size = page_size(violations, request.page_size, default=100)
        fingerprint = filter_fingerprint("agencies")
        cursor = decode_page_token(violations, request.page_token, fingerprint)
        violations.require(request)
        violations.raise_if_any()
        found = await self.database.run(
            lambda s: reference.agencies(s, cursor.last_id if cursor else None, size + 1)
        )
        # Supervisors are the agencies' and the admins' business, not the public's.
        reader = principal_var.get()
        for agency in found:
            if not access.may_see_supervisors(reader, agency.code):
                del agency.supervisor_subjects[:]
        response = appeals_service_pb2.ListAgenciesResponse(agencies=found[:size])
        if len(found) > size:
            response.next_page_token = encode_page_token("", found[size - 1].code, fingerprint)
        return response

    async def UpdateAgency(
        self, request: appeals_service_pb2.UpdateAgencyRequest, context: Context
    ) -> appeals_pb2.Agency:
        update = requests.agency_update(request)
        principal = require_principal()
        access.ensure_admin(principal)

        def change(session: Session) -> appeals_pb2.Agency:
            current = reference.current_agency(session, update.code, for_update=True)
            agency = requests.updated_agency(update, current)
            return reference.change_agency(session, agency, _who(principal), utcnow())

        return await self._idempotent(request, principal, appeals_pb2.Agency, change)

    async def ListCategories(
        self, request: appeals_service_pb2.ListCategoriesRequest, context: Context
    ) -> appeals_service_pb2.ListCategoriesResponse:
        violations = Violations()
        size = page_size(violations, request.page_size, default=100)
        if request.agency_code:
            check_agency_code(request.agency_code, violations, "agency_code")
        fingerprint = filter_fingerprint("categories", request.agency_code)
        cursor = decode_page_token(violations, request.page_token, fingerprint)
        violations.require(request)
        violations.raise_if_any()
        found = await self.database.run(
            lambda s: reference.categories(
                s, request.agency_code or None, cursor.last_id if cursor else None, size + 1
            )
        )
        response = appeals_service_pb2.ListCategoriesResponse(categories=found[:size])
        if len(found) > size:
            response.next_page_token = encode_page_token("", found[size - 1].code, fingerprint)
        return response

    async def GetCategory(
        self, request: appeals_service_pb2.GetCategoryRequest, context: Context
    ) -> appeals_pb2.Category:
        violations = Violations()
        if request.category_code:
            check_category_code(request.category_code, violations, "category_code")
        violations.require(request)
        violations.raise_if_any()
        return await self.database.run(lambda s: reference.category(s, request.category_code))

    async def UpdateCategory(
        self, request: appeals_service_pb2.UpdateCategoryRequest, context: Context
    ) -> appeals_pb2.Category:
        update = requests.category_update(request)
        principal = require_principal()
        access.ensure_admin(principal)

        def change(session: Session) -> appeals_pb2.Category:
            current = reference.current_category(session, update.code, for_update=True)
            category = requests.updated_category(update, current)
            return reference.change_category(session, category, _who(principal), utcnow())

        return await self._idempotent(request, principal, appeals_pb2.Category, change)

    async def GetHolidayCalendar(
        self, request: appeals_service_pb2.GetHolidayCalendarRequest, context: Context
    ) -> appeals_pb2.HolidayCalendar:
        violations = Violations()
        if request.year:
            requests.check_calendar_year(violations, request.year, "year")
        violations.require(request)
        violations.raise_if_any()
        return await self.database.run(lambda s: reference.holiday_calendar(s, request.year))

    async def UpdateHolidayCalendar(
        self, request: appeals_service_pb2.UpdateHolidayCalendarRequest, context: Context
    ) -> appeals_pb2.HolidayCalendar:
        days = requests.holiday_calendar(request)
        principal = require_principal()
        access.ensure_admin(principal)
        return await self._idempotent(
            request,
            principal,
            appeals_pb2.HolidayCalendar,
            lambda s: reference.replace_holiday_calendar(s, request.calendar.year, days),
        )

    # --- Submitting and reading -----------------------------------------------------------------

    async def SubmitAppeal(
        self, request: appeals_service_pb2.SubmitAppealRequest, context: Context
    ) -> appeals_pb2.Appeal:
        violations = Violations()
        content = requests.new_appeal(request, violations)
        # Open in the contract only so that a call without ASAN Login hears why it is refused.
        citizen = access.ensure_citizen(principal_var.get())
        key = idempotency_key(request, citizen)
        authorization = metadata_value(context, "authorization") or ""
        appeal, registered = await self.submission.submit(key, citizen, authorization, content, violations)
        if registered:
            self.metrics.registered_at(appeal.agency_code)
        return appeal

    async def GetAppeal(
        self, request: appeals_service_pb2.GetAppealRequest, context: Context
    ) -> appeals_pb2.Appeal:
        principal = require_principal()
        violations = Violations()
        if request.appeal_number:
            requests.check_appeal_number(violations, request.appeal_number)
        violations.require(request)
        violations.raise_if_any()

        def read(session: Session) -> appeals_pb2.Appeal:
            row = queries.appeal_by_number(session, request.appeal_number)
            visible = access.ensure_visible(principal, row, request.appeal_number)
            return convert.appeal(visible, for_officer=not principal.is_citizen)

        return await self.database.run(read)

    async def GetAppealAttachment(
        self, request: appeals_service_pb2.GetAppealAttachmentRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        principal = require_principal()
        index = requests.attachment_index(request)

        def read(session: Session) -> httpbody_pb2.HttpBody:
            row = queries.appeal_by_number(session, request.appeal_number)
            visible = access.ensure_visible(principal, row, request.appeal_number)
            if index >= len(visible.attachments):
                raise access.attachment_not_found(request.appeal_number, index)
            attachment = visible.attachments[index]
            return httpbody_pb2.HttpBody(content_type=attachment.content_type, data=attachment.content)

        return await self.database.run(read)

    async def ListAppeals(
        self, request: appeals_service_pb2.ListAppealsRequest, context: Context
    ) -> appeals_service_pb2.ListAppealsResponse:
        principal = require_principal()
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        where = requests.appeal_filter(request, violations)
        fingerprint = filter_fingerprint(principal.kind, principal.subject, where)
        after = decode_keyset(violations, request.page_token, fingerprint)
        violations.require(request)
        violations.raise_if_any()
        access.ensure_may_list(principal)

        def read(session: Session) -> list[AppealRow]:
            if where.escalated_only and not principal.is_admin:
                access.ensure_supervisor(
                    principal, queries.supervisors_of(session, principal.agency_code or "")
                )
            rows = queries.list_appeals(session, access.visible_appeals(principal), where, after, size + 1)
            return rows

        rows = await self.database.run(read)
        response = appeals_service_pb2.ListAppealsResponse(
            appeals=[
                convert.appeal(row, for_officer=not principal.is_citizen, with_history=False)
                for row in rows[:size]
            ]
        )
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = encode_keyset(last.due_at, last.number, fingerprint)
        return response

    # --- The workflow ---------------------------------------------------------------------------

    async def AssignAppeal(
        self, request: appeals_service_pb2.AssignAppealRequest, context: Context
    ) -> appeals_pb2.Appeal:
        principal = require_principal()
        change = requests.assignment(request)
        return await self._step(request, principal, lambda s, now: casework.assign(s, principal, change, now))

    async def ForwardAppeal(
        self, request: appeals_service_pb2.ForwardAppealRequest, context: Context
    ) -> appeals_pb2.Appeal:
        principal = require_principal()
        change = requests.forwarding(request)
        return await self._step(
            request, principal, lambda s, now: casework.forward(s, principal, change, now)
        )

    async def ExtendAppeal(
        self, request: appeals_service_pb2.ExtendAppealRequest, context: Context
    ) -> appeals_pb2.Appeal:
        principal = require_principal()
        change = requests.extension(request)
        return await self._step(request, principal, lambda s, now: casework.extend(s, principal, change, now))

    async def AnswerAppeal(
        self, request: appeals_service_pb2.AnswerAppealRequest, context: Context
    ) -> appeals_pb2.Appeal:
        principal = require_principal()
        change = requests.answer(request)
        return await self._step(request, principal, lambda s, now: casework.answer(s, principal, change, now))

    async def LeaveAppealUnconsidered(
        self, request: appeals_service_pb2.LeaveAppealUnconsideredRequest, context: Context
    ) -> appeals_pb2.Appeal:
        principal = require_principal()
        change = requests.unconsidered(request)
        return await self._step(
            request, principal, lambda s, now: casework.leave_unconsidered(s, principal, change, now)
        )

    async def CloseAppeal(
        self, request: appeals_service_pb2.CloseAppealRequest, context: Context
    ) -> appeals_pb2.Appeal:
        principal = require_principal()
        number = requests.closing(request)
        return await self._step(request, principal, lambda s, now: casework.close(s, principal, number, now))

    async def RateAnswer(
        self, request: appeals_service_pb2.RateAnswerRequest, context: Context
    ) -> appeals_pb2.Appeal:
        principal = require_principal()
        change = requests.rating(request)
        return await self._step(request, principal, lambda s, now: casework.rate(s, principal, change, now))

    async def ReopenAppeal(
        self, request: appeals_service_pb2.ReopenAppealRequest, context: Context
    ) -> appeals_pb2.Appeal:
        principal = require_principal()
        change = requests.reopening(request)
        return await self._step(request, principal, lambda s, now: casework.reopen(s, principal, change, now))

    # --- Open statistics ------------------------------------------------------------------------

    async def GetAppealStatistics(
        self, request: appeals_service_pb2.GetAppealStatisticsRequest, context: Context
    ) -> appeals_pb2.AppealStatistics:
        year, month = requests.statistics_month(request)
        return await self.database.run(
            lambda s: open_statistics.month_statistics(s, year, month, request.agency_code or None)
        )

    # --- The open Open311 GeoReport v2 view -----------------------------------------------------

    async def GetGeoReportServices(
        self, request: appeals_service_pb2.GetGeoReportServicesRequest, context: Context
    ) -> georeport_pb2.GeoReportServices:
        return await self.database.run(georeport.services)

    async def GetGeoReportServiceDefinition(
        self, request: appeals_service_pb2.GetGeoReportServiceDefinitionRequest, context: Context
    ) -> georeport_pb2.GeoReportServiceDefinition:
        code = requests.georeport_service_code(request)
        return await self.database.run(lambda s: georeport.service_definition(s, code))

    async def GetGeoReportRequests(
        self, request: appeals_service_pb2.GetGeoReportRequestsRequest, context: Context
    ) -> georeport_pb2.GeoReportRequests:
        where = requests.georeport_filter(request, utcnow())
        return await self.database.run(lambda s: georeport.requests(s, where))

    async def GetGeoReportRequest(
        self, request: appeals_service_pb2.GetGeoReportRequestRequest, context: Context
    ) -> georeport_pb2.GeoReportRequests:
        number = requests.georeport_request_number(request)
        return await self.database.run(lambda s: georeport.request(s, number))

    # --- Shared -------------------------------------------------------------------------------

    async def _step(self, request: Message, principal: Principal, step: Step) -> appeals_pb2.Appeal:
        """One step of the workflow, once per request_id, in one transaction with its history and
        event; the metrics count it once, not every replay."""
        done: list[casework.Changed] = []

        def unit(session: Session) -> appeals_pb2.Appeal:
            changed = step(session, utcnow())
            done.append(changed)
            return convert.appeal(changed.appeal, for_officer=not principal.is_citizen)

        response = await self._idempotent(request, principal, appeals_pb2.Appeal, unit)
        # The last run is the one that committed (a unique-key race reruns the unit once).
        for changed in done[-1:]:
            row = changed.appeal
            if changed.answered and row.answer_working_days is not None:
                self.metrics.answered_by(row.agency_code, bool(row.answered_on_time), row.answer_working_days)
            for copy in changed.registered:
                self.metrics.registered_at(copy.agency_code)
        return response

    async def _idempotent(
        self, request: Message, principal: Principal, response_type: type[M], effect: Callable[[Session], M]
    ) -> M:
        key = idempotency_key(request, principal)
        return await self.idempotency.run(self.database, key, response_type, effect)

    # --- Audit trail (services.runtime.audit) -------------------------------------------------

    async def ListAuditRecords(
        self, request: audit_pb2.ListAuditRecordsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.ListAuditRecordsResponse:
        return await list_audit_records(self.database, runtime_tables, request)


def _who(principal: Principal) -> str:
    return f"{principal.kind.value}:{principal.subject}"
