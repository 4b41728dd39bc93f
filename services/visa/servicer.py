"""The VisaService gRPC servicer. Each method reads: validate the request (requests), authorise
the caller (access), call the rule or the flow (applying, decisions, border, reference), and
answer with the API message (convert)."""

from __future__ import annotations

from typing import Any

import grpc
from google.api import httpbody_pb2
from sqlalchemy.orm import Session

from asan.common.v1 import audit_pb2
from asan.visa.v1 import visa_pb2, visa_service_pb2, visa_service_pb2_grpc
from services.runtime.audit import list_audit_records
from services.runtime.auth import Principal
from services.runtime.db import Database, utcnow
from services.runtime.errors import FailedPrecondition
from services.runtime.idempotency import Idempotency, IdempotencyKey, idempotency_key
from services.runtime.interceptors import require_principal
from services.runtime.paging import (
    decode_keyset,
    decode_page_token,
    encode_keyset,
    encode_page_token,
    filter_fingerprint,
    page_size,
)
from services.runtime.validation import Violations
from services.visa import access, applying, border, convert, decisions, queries, reference, requests
from services.visa.document import EVisaDocument, evisa_document
from services.visa.domain import Decision, StateConflict
from services.visa.metrics import VisaMetrics
from services.visa.payments import FeeDesk
from services.visa.rendering import DocumentRenderer
from services.visa.signing import VisaSigner
from services.visa.tables import ApplicantRow, ApplicationRow, runtime_tables


class VisaServicer(visa_service_pb2_grpc.VisaServiceServicer):
    def __init__(
        self,
        database: Database,
        fees: FeeDesk,
        signer: VisaSigner,
        metrics: VisaMetrics,
        renderer: DocumentRenderer,
    ) -> None:
        self.database = database
        self.fees = fees
        self.signer = signer
        self.metrics = metrics
        self.renderer = renderer
        self.idempotency = Idempotency(runtime_tables.idempotency_keys)

    # --- Applying (applicants have no token) ---------------------------------------------------

    async def CreateApplication(
        self, request: visa_service_pb2.CreateApplicationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_service_pb2.CreateApplicationResponse:
        violations = Violations()
        new = requests.new_application(request, violations)
        key = idempotency_key(request, None)
        return await applying.create_application(
            self.database, self.idempotency, self.fees, key=key, new=new, violations=violations
        )

    async def GetApplicationStatus(
        self,
        request: visa_service_pb2.GetApplicationStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> visa_pb2.Application:
        violations = Violations()
        requests.check_application_pair(violations, request.application_number, request.passport_number)
        violations.raise_if_any()
        return await self.database.run(
            lambda s: convert.application(
                _applicant(s, request.application_number, request.passport_number)[0]
            )
        )

    async def GetEVisaDocument(
        self, request: visa_service_pb2.GetEVisaDocumentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> httpbody_pb2.HttpBody:
        violations = Violations()
        requests.check_application_pair(violations, request.application_number, request.passport_number)
        violations.raise_if_any()

        def read(session: Session) -> EVisaDocument:
            application, applicant = _applicant(session, request.application_number, request.passport_number)
            country = queries.current_policy_row(session, applicant.nationality)
            document = evisa_document(applicant, application, country.name if country else "")
            if document is None:
                raise _no_visa_yet(applicant)
            return document

        document = await self.database.run(read)
        return httpbody_pb2.HttpBody(content_type="application/pdf", data=await self.renderer.pdf(document))

    # --- Review --------------------------------------------------------------------------------

    async def GetApplication(
        self, request: visa_service_pb2.GetApplicationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.Application:
        access.ensure_case_officer(require_principal())
        violations = Violations()
        requests.check_application_number(violations, request.application_number)
        violations.raise_if_any()

        def read(session: Session) -> visa_pb2.Application:
            application = queries.application_by_number(session, request.application_number)
            if application is None:
                raise access.not_found(request.application_number)
            return convert.application(application)

        return await self.database.run(read)

    async def ListApplications(
        self, request: visa_service_pb2.ListApplicationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_service_pb2.ListApplicationsResponse:
        access.ensure_case_officer(require_principal())
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        where = requests.application_filter(request, violations)
        fingerprint = filter_fingerprint("applications", where)
        after = decode_keyset(violations, request.page_token, fingerprint)
        violations.raise_if_any()
        rows = await self.database.run(lambda s: queries.list_applications(s, where, after, size + 1))
        response = visa_service_pb2.ListApplicationsResponse(
            applications=[convert.application(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = encode_keyset(rows[size - 1].queue_at, rows[size - 1].id, fingerprint)
        return response

    async def ApproveApplicant(
        self, request: visa_service_pb2.ApproveApplicantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.Application:
        principal = require_principal()
        access.ensure_case_officer(principal)
        violations = Violations()
        decision = requests.approval(request, violations)
        violations.raise_if_any()
        key = idempotency_key(request, principal)
        return await self._decide(key, principal, decision)

    async def RefuseApplicant(
        self, request: visa_service_pb2.RefuseApplicantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.Application:
        principal = require_principal()
        access.ensure_case_officer(principal)
        violations = Violations()
        decision = requests.refusal(request, violations)
        violations.raise_if_any()
        key = idempotency_key(request, principal)
        return await self._decide(key, principal, decision)

    async def _decide(
        self, key: IdempotencyKey, principal: Principal, decision: requests.DecisionRequest
    ) -> visa_pb2.Application:
        """One applicant's decision, in one transaction with its event; counted once, not per replay."""
        decided: list[ApplicationRow] = []

        def decide(session: Session) -> visa_pb2.Application:
            application, applicant = _applicant(
                session, decision.application_number, decision.passport_number, for_update=True
            )
            now = utcnow()
            decided_by = f"{principal.kind.value}:{principal.subject}"
            try:
                if decision.refusal_reason is None:
                    decisions.approve(
                        session, application, applicant, self.signer, now=now, decided_by=decided_by
                    )
                else:
                    decisions.refuse(
                        session,
                        application,
                        applicant,
                        decision.refusal_reason,
                        now=now,
                        decided_by=decided_by,
                    )
            except StateConflict as conflict:
                raise FailedPrecondition(
                    message=conflict.message, reason=conflict.reason, metadata=conflict.metadata
                ) from None
            decided.append(application)
            return convert.application(application)

        response = await self.idempotency.run(self.database, key, visa_pb2.Application, decide)
        outcome = Decision.APPROVED if decision.refusal_reason is None else Decision.REFUSED
        for application in decided:
            self.metrics.decided(application, outcome)
        return response

    # --- At the border -------------------------------------------------------------------------

    async def VerifyVisa(
        self, request: visa_service_pb2.VerifyVisaRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.VisaVerification:
        access.ensure_border_check(require_principal())
        violations = Violations()
        visa_number = requests.visa_to_verify(request, self.signer, violations)
        violations.raise_if_any()
        return await self.database.run(
            lambda s: border.verification(s, visa_number, request.passport_number, utcnow())
        )

    async def RecordEntry(
        self, request: visa_service_pb2.RecordEntryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.EVisa:
        principal = require_principal()
        access.ensure_border_post(principal)
        violations = Violations()
        requests.check_entry(request, violations)
        violations.raise_if_any()
        key = idempotency_key(request, principal)
        return await self.idempotency.run(
            self.database,
            key,
            visa_pb2.EVisa,
            lambda s: border.record_entry(s, request.visa_number, request.passport_number, utcnow()),
        )

    async def GetVerificationKey(
        self, request: visa_service_pb2.GetVerificationKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.VerificationKey:
        return visa_pb2.VerificationKey(
            public_key_pem=self.signer.public_key_pem(), key_id=self.signer.key_id, algorithm="Ed25519"
        )

    # --- Reference tables (anyone reads them; admins change them) ------------------------------

    async def GetCountryPolicy(
        self, request: visa_service_pb2.GetCountryPolicyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.CountryPolicy:
        violations = Violations()
        requests.check_country_code(violations, request.country_code, "country_code")
        violations.raise_if_any()
        return await self.database.run(lambda s: reference.country_policy(s, request.country_code))

    async def ListCountryPolicies(
        self,
        request: visa_service_pb2.ListCountryPoliciesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> visa_service_pb2.ListCountryPoliciesResponse:
        violations = Violations()
        size = page_size(violations, request.page_size, default=300)
        fingerprint = filter_fingerprint("countries")
        cursor = decode_page_token(violations, request.page_token, fingerprint)
        violations.raise_if_any()
        after = cursor.last_id if cursor else None
        policies = await self.database.run(lambda s: reference.country_policies(s, after, size + 1))
        response = visa_service_pb2.ListCountryPoliciesResponse(policies=policies[:size])
        if len(policies) > size:
            response.next_page_token = encode_page_token("", policies[size - 1].country_code, fingerprint)
        return response

    async def UpdateCountryPolicy(
        self,
        request: visa_service_pb2.UpdateCountryPolicyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> visa_pb2.CountryPolicy:
        principal = require_principal()
        access.ensure_admin(principal)
        violations = Violations()
        update = requests.policy_update(request, violations)
        violations.raise_if_any()
        key = idempotency_key(request, principal)

        def change(session: Session) -> visa_pb2.CountryPolicy:
            current = reference.current_policy(session, update.country_code, for_update=True)
            policy = requests.policy_change(requests.updated_policy(update, current))
            return reference.change_country_policy(session, policy, principal.subject, utcnow())

        return await self.idempotency.run(self.database, key, visa_pb2.CountryPolicy, change)

    async def GetHolidayCalendar(
        self, request: visa_service_pb2.GetHolidayCalendarRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.HolidayCalendar:
        violations = Violations()
        requests.check_calendar_year(violations, request.year, "year")
        violations.raise_if_any()
        return await self.database.run(lambda s: reference.holiday_calendar(s, request.year))

    async def UpdateHolidayCalendar(
        self,
        request: visa_service_pb2.UpdateHolidayCalendarRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> visa_pb2.HolidayCalendar:
        principal = require_principal()
        access.ensure_admin(principal)
        violations = Violations()
        days = requests.holiday_calendar(request, violations)
        violations.raise_if_any()
        key = idempotency_key(request, principal)
        return await self.idempotency.run(
            self.database,
            key,
            visa_pb2.HolidayCalendar,
            lambda s: reference.replace_holiday_calendar(s, request.calendar.year, days),
        )

    # --- Audit trail (services.runtime.audit) -------------------------------------------------

    async def ListAuditRecords(
        self, request: audit_pb2.ListAuditRecordsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.ListAuditRecordsResponse:
        return await list_audit_records(self.database, runtime_tables, request)


def _applicant(
    session: Session, application_number: str, passport_number: str, *, for_update: bool = False
) -> tuple[ApplicationRow, ApplicantRow]:
    """The application and the applicant a number and passport name; NOT_FOUND for anything
    else, so that a guessed number tells nothing."""
    application = queries.application_by_number(session, application_number, for_update=for_update)
    if application is None or not access.applicant_may_see(application, passport_number):
        raise access.not_found(application_number)
    return application, next(a for a in application.applicants if a.passport_number == passport_number)


def _no_visa_yet(applicant: ApplicantRow) -> FailedPrecondition:
    state = "was refused" if applicant.decision == Decision.REFUSED else "has no decision yet"
    return FailedPrecondition(
        message=f"There is no e-visa to download: the applicant {state}.",
        reason="EVISA_NOT_ISSUED",
        metadata={"decision": applicant.decision or "PENDING"},
    )
