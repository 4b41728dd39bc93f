"""The VisaService gRPC servicer: validate, authorise, call the rules, persist, add events.

CreateApplication asks payment for the fee's payment before it writes anything: the
application row, its idempotency key and the payment id commit together, and the payment
request's id is derived from the application, which is derived from the request, so that a
retry after payment was unavailable (nothing written) or after a lost answer (a replay)
never makes a second payment.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import grpc
from google.api import httpbody_pb2
from google.type import date_pb2
from sqlalchemy.orm import Session

from asan.common.v1 import identifiers_pb2, money_pb2
from asan.visa.v1 import visa_pb2, visa_service_pb2, visa_service_pb2_grpc
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.baku_time import baku_date
from services.runtime.db import Database, utcnow
from services.runtime.errors import FailedPrecondition, NotFound
from services.runtime.holidays import holidays_of_year, replace_holidays_of_year
from services.runtime.idempotency import Idempotency, idempotency_key
from services.runtime.identifiers import is_country_code
from services.runtime.interceptors import require_principal
from services.runtime.paging import decode_page_token, encode_page_token, filter_fingerprint, page_size
from services.runtime.validation import Violations, check_request_id
from services.visa import access, convert, decisions, queries
from services.visa.document import evisa_pdf
from services.visa.domain import (
    FEE_CODES,
    ApplicationStatus,
    CountryRule,
    Decision,
    NewApplicant,
    NewApplication,
    Speed,
    StateConflict,
    VisaFacts,
    validate_application,
    verify,
)
from services.visa.metrics import VisaMetrics
from services.visa.names import normalized_name
from services.visa.payments import FeeDesk
from services.visa.signing import CodeRejected, VisaSigner
from services.visa.tables import ApplicantRow, ApplicationRow, CountryPolicyRow, holiday_table, runtime_tables

_METHOD = "/asan.visa.v1.VisaService/"
_APPLICATION_NUMBER = re.compile(r"EV-[0-9]{4}-[0-9A-Z]{8}")
MAX_HOLIDAYS_PER_YEAR = 60
MAX_COUNTRY_NAME = 100


def _enum_name(enum: Any, value: int, prefix: str) -> str | None:
    """The stored name of a proto enum value; None for unspecified or unknown numbers."""
    if value == 0 or value not in enum.values():
        return None
    return str(enum.Name(value)).removeprefix(prefix)


def _date(violations: Violations, message: Any, field: str, path: str, required: bool = True) -> date | None:
    if not message.HasField(field):
        if required:
            violations.add(path, "Required: a date (year, month, day).", "REQUIRED")
        return None
    try:
        return protos.to_date(getattr(message, field))
    except ValueError:
        violations.add(path, "Must be a real calendar date with year, month and day.", "FORMAT")
        return None


def _new_application(
    request: visa_service_pb2.CreateApplicationRequest, violations: Violations
) -> NewApplication:
    a = request.application
    applicants = []
    for index, p in enumerate(a.applicants):
        path = f"application.applicants[{index}]"
        applicants.append(
            NewApplicant(
                surname=p.surname,
                given_names=p.given_names,
                date_of_birth=_date(violations, p, "date_of_birth", f"{path}.date_of_birth"),
                sex=_enum_name(visa_pb2.Sex, p.sex, "SEX_"),
                nationality=p.nationality,
                passport_number=p.passport_number,
                passport_expiry=_date(violations, p, "passport_expiry_date", f"{path}.passport_expiry_date"),
                email=p.email,
            )
        )
    speed = _enum_name(visa_pb2.Speed, a.speed, "SPEED_")
    return NewApplication(
        applicants=applicants,
        arrival=_date(violations, a, "arrival_date", "application.arrival_date"),
        purpose=_enum_name(visa_pb2.Purpose, a.purpose, "PURPOSE_"),
        speed=Speed(speed) if speed else None,
    )


def _check_pair(violations: Violations, application_number: str, passport_number: str) -> None:
    violations.check(
        bool(_APPLICATION_NUMBER.fullmatch(application_number)),
        "application_number",
        "Must be the application number CreateApplication returned, e.g. EV-2026-7K3P9QXM.",
        "FORMAT",
    )
    violations.check(bool(passport_number), "passport_number", "Required: the passport number.", "REQUIRED")


class VisaServicer(visa_service_pb2_grpc.VisaServiceServicer):
    def __init__(self, database: Database, fees: FeeDesk, signer: VisaSigner, metrics: VisaMetrics) -> None:
        self.database = database
        self.fees = fees
        self.signer = signer
        self.metrics = metrics
        self.idempotency = Idempotency(runtime_tables.idempotency_keys)

    # --- Applying ------------------------------------------------------------------------------

    async def CreateApplication(
        self, request: visa_service_pb2.CreateApplicationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_service_pb2.CreateApplicationResponse:
        violations = Violations()
        check_request_id(violations, request.request_id)
        violations.check(
            request.HasField("application"), "application", "Required: the application.", "REQUIRED"
        )
        violations.raise_if_any()
        new = _new_application(request, violations)
        key = idempotency_key(_METHOD + "CreateApplication", request, None)
        response_type = visa_service_pb2.CreateApplicationResponse

        def check(session: Session) -> bytes | None:
            stored = self.idempotency.peek(session, key)
            if isinstance(stored, bytes):
                return stored
            today = baku_date(utcnow())
            policies = queries.current_policies(session, {p.nationality for p in new.applicants})
            holidays = queries.holidays_ahead(session, today)
            validate_application(new, policies, holidays, today, violations)
            violations.raise_if_any()
            return None

        stored = await self.database.run(check)
        if stored is not None:
            return response_type.FromString(stored)
        assert new.speed is not None and new.arrival is not None and new.purpose is not None
        application_id = decisions.application_id_for(key.request_id, key.fingerprint)
        now = utcnow()
        number = decisions.application_number_for(application_id, baku_date(now).year)
        code = FEE_CODES[new.speed]
        unit_fee = await self.fees.unit_fee(code)
        lead = new.applicants[0]
        payment = await self.fees.create_payment(
            request_id=decisions.payment_request_id_for(application_id),
            service_code=code,
            reference=number,
            passport=identifiers_pb2.ForeignPassport(
                issuing_country=lead.nationality, number=lead.passport_number
            ),
            quantity=len(new.applicants),
            unit_fee=unit_fee,
            description=f"E-visa application {number}, {len(new.applicants)} applicant(s)",
            application_id=application_id,
        )

        def create(session: Session) -> visa_service_pb2.CreateApplicationResponse:
            row = ApplicationRow(
                id=application_id,
                number=number,
                arrival_date=new.arrival,
                purpose=new.purpose,
                speed=new.speed.value if new.speed else "",
                status=ApplicationStatus.AWAITING_PAYMENT.value,
                payment_id=payment.payment_id,
                fee_minor=payment.amount.minor_units,
                fee_currency=payment.amount.currency,
                created_at=now,
                queue_at=now,
                overdue=False,
                applicants=[
                    ApplicantRow(
                        position=position,
                        surname=p.surname.strip(),
                        given_names=p.given_names.strip(),
                        normalized_name=normalized_name(p.surname, p.given_names),
                        date_of_birth=p.date_of_birth,
                        sex=p.sex,
                        nationality=p.nationality,
                        passport_number=p.passport_number,
                        passport_expiry=p.passport_expiry,
                        email=p.email,
                    )
                    for position, p in enumerate(new.applicants)
                ],
            )
            session.add(row)
            session.flush()
            return visa_service_pb2.CreateApplicationResponse(
                application=convert.application(row),
                payment_confirmation_secret=payment.confirmation_secret,
                fee=money_pb2.Money(minor_units=row.fee_minor, currency_code=row.fee_currency),
            )

        return await self.idempotency.run(self.database, key, response_type, create)

    async def GetApplicationStatus(
        self,
        request: visa_service_pb2.GetApplicationStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> visa_pb2.Application:
        violations = Violations()
        _check_pair(violations, request.application_number, request.passport_number)
        violations.raise_if_any()

        def read(session: Session) -> visa_pb2.Application:
            application = queries.application_by_number(session, request.application_number)
            if application is None or not access.applicant_may_see(application, request.passport_number):
                raise access.not_found(request.application_number)
            return convert.application(application)

        return await self.database.run(read)

    async def GetEVisaDocument(
        self, request: visa_service_pb2.GetEVisaDocumentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> httpbody_pb2.HttpBody:
        violations = Violations()
        _check_pair(violations, request.application_number, request.passport_number)
        violations.raise_if_any()

        def read(session: Session) -> visa_pb2.EVisa:
            application = queries.application_by_number(session, request.application_number)
            if application is None or not access.applicant_may_see(application, request.passport_number):
                raise access.not_found(request.application_number)
            applicant = next(
                a for a in application.applicants if a.passport_number == request.passport_number
            )
            visa = convert.evisa(applicant, application)
            if visa is None:
                raise _no_visa_yet(applicant)
            return visa

        visa = await self.database.run(read)
        pdf = evisa_pdf(_document_facts(visa), visa.verification_code)
        return httpbody_pb2.HttpBody(content_type="application/pdf", data=pdf)

    # --- Review --------------------------------------------------------------------------------

    async def GetApplication(
        self, request: visa_service_pb2.GetApplicationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.Application:
        access.ensure_case_officer(require_principal())

        def read(session: Session) -> visa_pb2.Application:
            application = queries.application_by_number(session, request.application_number)
            if application is None:
                raise access.not_found(request.application_number)
            return convert.application(application)

        return await self.database.run(read)

    async def ListApplications(
        self, request: visa_service_pb2.ListApplicationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_service_pb2.ListApplicationsResponse:
        principal = require_principal()
        access.ensure_case_officer(principal)
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        where = queries.ApplicationFilter(
            status=_filter(
                violations, visa_pb2.ApplicationStatus, request.status, "APPLICATION_STATUS_", "status"
            ),
            speed=_filter(violations, visa_pb2.Speed, request.speed, "SPEED_", "speed"),
            overdue_only=request.overdue_only,
        )
        fingerprint = filter_fingerprint("applications", where)
        cursor = decode_page_token(violations, request.page_token, fingerprint)
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            try:
                after = (datetime.fromisoformat(cursor.last_sort_key), cursor.last_id)
            except ValueError:
                violations.add(
                    "page_token", "Not a page token of this method; pass back next_page_token unchanged."
                )
        violations.raise_if_any()

        def read(session: Session) -> tuple[list[visa_pb2.Application], tuple[datetime, str] | None]:
            rows = queries.list_applications(session, where, after, size + 1)
            last = (rows[size - 1].queue_at, rows[size - 1].id) if len(rows) > size else None
            return [convert.application(row) for row in rows[:size]], last

        applications, last = await self.database.run(read)
        response = visa_service_pb2.ListApplicationsResponse(applications=applications)
        if last is not None:
            response.next_page_token = encode_page_token(last[0].isoformat(), last[1], fingerprint)
        return response

    async def ApproveApplicant(
        self, request: visa_service_pb2.ApproveApplicantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.Application:
        principal = require_principal()
        access.ensure_case_officer(principal)
        violations = Violations()
        check_request_id(violations, request.request_id)
        _check_pair(violations, request.application_number, request.passport_number)
        violations.raise_if_any()
        return await self._decide(
            principal, request, request.application_number, request.passport_number, None
        )

    async def RefuseApplicant(
        self, request: visa_service_pb2.RefuseApplicantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.Application:
        principal = require_principal()
        access.ensure_case_officer(principal)
        violations = Violations()
        check_request_id(violations, request.request_id)
        _check_pair(violations, request.application_number, request.passport_number)
        reason = _enum_name(visa_pb2.RefusalReason, request.refusal_reason, "REFUSAL_REASON_")
        violations.check(
            reason is not None, "refusal_reason", "Required: why the applicant is refused.", "REQUIRED"
        )
        violations.raise_if_any()
        return await self._decide(
            principal, request, request.application_number, request.passport_number, reason
        )

    async def _decide(
        self,
        principal: Principal,
        request: visa_service_pb2.ApproveApplicantRequest | visa_service_pb2.RefuseApplicantRequest,
        application_number: str,
        passport_number: str,
        refusal_reason: str | None,
    ) -> visa_pb2.Application:
        method = "ApproveApplicant" if refusal_reason is None else "RefuseApplicant"
        key = idempotency_key(_METHOD + method, request, principal)
        decided: list[ApplicationRow] = []

        def decide(session: Session) -> visa_pb2.Application:
            application = queries.application_by_number(session, application_number, for_update=True)
            if application is None or not access.applicant_may_see(application, passport_number):
                raise access.not_found(application_number)
            applicant = next(a for a in application.applicants if a.passport_number == passport_number)
            now = utcnow()
            decided_by = f"{principal.kind.value}:{principal.subject}"
            try:
                if refusal_reason is None:
                    decisions.approve(
                        session, application, applicant, self.signer, now=now, decided_by=decided_by
                    )
                else:
                    decisions.refuse(
                        session, application, applicant, refusal_reason, now=now, decided_by=decided_by
                    )
            except StateConflict as conflict:
                raise FailedPrecondition(
                    message=conflict.message, reason=conflict.reason, metadata=conflict.metadata
                ) from None
            decided.append(application)
            return convert.application(application)

        response = await self.idempotency.run(self.database, key, visa_pb2.Application, decide)
        for application in decided:
            self.metrics.decided(
                application, Decision.APPROVED if refusal_reason is None else Decision.REFUSED
            )
        return response

    # --- At the border -------------------------------------------------------------------------

    async def VerifyVisa(
        self, request: visa_service_pb2.VerifyVisaRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.VisaVerification:
        access.ensure_border_check(require_principal())
        violations = Violations()
        check_request_id(violations, request.request_id)
        violations.check(
            bool(request.passport_number), "passport_number", "Required: the passport shown.", "REQUIRED"
        )
        which = request.WhichOneof("visa")
        if which is None:
            violations.add(
                "visa_number", "Required: the visa number or the scanned verification_code.", "REQUIRED"
            )
        visa_number = request.visa_number
        if which == "verification_code":
            try:
                visa_number = self.signer.verify(request.verification_code).visa_number
            except CodeRejected:
                violations.add(
                    "verification_code",
                    "The code's signature does not match: it was not issued by ASAN Viza or was altered.",
                    "SIGNATURE_INVALID",
                )
        violations.raise_if_any()

        def check(session: Session) -> visa_pb2.VisaVerification:
            applicant = queries.applicant_by_visa_number(session, visa_number)
            if applicant is None:
                raise access.visa_not_found(visa_number)
            result = verify(_facts(applicant), request.passport_number, baku_date(utcnow()))
            return visa_pb2.VisaVerification(
                result=visa_pb2.VerificationResult.Value(f"VERIFICATION_RESULT_{result}"),
                evisa=convert.evisa(applicant, applicant.application),
            )

        return await self.database.run(check)

    async def RecordEntry(
        self, request: visa_service_pb2.RecordEntryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.EVisa:
        principal = require_principal()
        access.ensure_border_post(principal)
        violations = Violations()
        check_request_id(violations, request.request_id)
        violations.check(bool(request.visa_number), "visa_number", "Required: the visa number.", "REQUIRED")
        violations.check(
            bool(request.passport_number), "passport_number", "Required: the passport shown.", "REQUIRED"
        )
        violations.raise_if_any()
        key = idempotency_key(_METHOD + "RecordEntry", request, principal)

        def enter(session: Session) -> visa_pb2.EVisa:
            applicant = queries.applicant_by_visa_number(session, request.visa_number, for_update=True)
            if applicant is None:
                raise access.visa_not_found(request.visa_number)
            now = utcnow()
            result = verify(_facts(applicant), request.passport_number, baku_date(now))
            if result.value != "VALID":
                raise FailedPrecondition(
                    message=f"No entry on this visa: it is {result.value.replace('_', ' ').lower()}.",
                    reason=f"VISA_{result.value}",
                    metadata={"visa_number": request.visa_number, "result": result.value},
                )
            applicant.entry_at = now
            visa = convert.evisa(applicant, applicant.application)
            assert visa is not None
            return visa

        return await self.idempotency.run(self.database, key, visa_pb2.EVisa, enter)

    async def GetVerificationKey(
        self, request: visa_service_pb2.GetVerificationKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.VerificationKey:
        return visa_pb2.VerificationKey(
            public_key_pem=self.signer.public_key_pem(), key_id=self.signer.key_id, algorithm="Ed25519"
        )

    # --- Reference tables ----------------------------------------------------------------------

    async def GetCountryPolicy(
        self, request: visa_service_pb2.GetCountryPolicyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.CountryPolicy:
        violations = Violations()
        _check_country(violations, request.country_code, "country_code")
        violations.raise_if_any()

        def read(session: Session) -> visa_pb2.CountryPolicy:
            row = queries.current_policy_row(session, request.country_code)
            if row is None:
                raise NotFound(
                    message=f"No country has the code {request.country_code}.",
                    reason="COUNTRY_NOT_FOUND",
                    metadata={"country_code": request.country_code},
                )
            return convert.country_policy(row)

        return await self.database.run(read)

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
        rows = await self.database.run(
            lambda s: [
                convert.country_policy(r)
                for r in queries.current_policy_rows(s, cursor.last_id if cursor else None, size + 1)
            ]
        )
        response = visa_service_pb2.ListCountryPoliciesResponse(policies=rows[:size])
        if len(rows) > size:
            response.next_page_token = encode_page_token("", rows[size - 1].country_code, fingerprint)
        return response

    async def UpdateCountryPolicy(
        self,
        request: visa_service_pb2.UpdateCountryPolicyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> visa_pb2.CountryPolicy:
        principal = require_principal()
        access.ensure_admin(principal)
        violations = Violations()
        check_request_id(violations, request.request_id)
        policy = request.policy
        _check_country(violations, policy.country_code, "policy.country_code")
        if not policy.name.strip() or len(policy.name) > MAX_COUNTRY_NAME:
            violations.add(
                "policy.name",
                f"Required: the country's English name, at most {MAX_COUNTRY_NAME} characters.",
                "REQUIRED",
            )
        rule = _enum_name(visa_pb2.CountryRule, policy.rule, "COUNTRY_RULE_")
        if rule is None:
            violations.add("policy.rule", "Required: EVISA, VISA_FREE or EMBASSY.", "REQUIRED")
        elif rule == CountryRule.VISA_FREE:
            violations.check(
                1 <= policy.visa_free_stay_days <= 365,
                "policy.visa_free_stay_days",
                "A visa-free rule needs the longest stay, 1 to 365 days.",
                "OUT_OF_RANGE",
            )
        else:
            violations.check(
                policy.visa_free_stay_days == 0,
                "policy.visa_free_stay_days",
                "Only a visa-free rule has a stay; leave it 0.",
                "OUT_OF_RANGE",
            )
        violations.raise_if_any()
        key = idempotency_key(_METHOD + "UpdateCountryPolicy", request, principal)

        def update(session: Session) -> visa_pb2.CountryPolicy:
            now = utcnow()
            current = queries.current_policy_row(session, policy.country_code, for_update=True)
            if current is not None:
                current.valid_to = now
            row = CountryPolicyRow(
                country_code=policy.country_code,
                version=queries.latest_policy_version(session, policy.country_code) + 1,
                name=policy.name.strip(),
                rule=rule,
                visa_free_stay_days=policy.visa_free_stay_days or None,
                valid_from=now,
                valid_to=None,
                changed_by=principal.subject,
            )
            session.add(row)
            session.flush()
            return convert.country_policy(row)

        return await self.idempotency.run(self.database, key, visa_pb2.CountryPolicy, update)

    async def GetHolidayCalendar(
        self, request: visa_service_pb2.GetHolidayCalendarRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> visa_pb2.HolidayCalendar:
        violations = Violations()
        violations.check(
            2000 <= request.year <= 2100, "year", "Must be a year from 2000 to 2100.", "OUT_OF_RANGE"
        )
        violations.raise_if_any()
        return await self.database.run(
            lambda s: convert.holiday_calendar(request.year, holidays_of_year(s, holiday_table, request.year))
        )

    async def UpdateHolidayCalendar(
        self,
        request: visa_service_pb2.UpdateHolidayCalendarRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> visa_pb2.HolidayCalendar:
        principal = require_principal()
        access.ensure_admin(principal)
        violations = Violations()
        check_request_id(violations, request.request_id)
        calendar = request.calendar
        year = calendar.year
        violations.check(
            2000 <= year <= 2100, "calendar.year", "Must be a year from 2000 to 2100.", "OUT_OF_RANGE"
        )
        violations.check(
            len(calendar.holidays) <= MAX_HOLIDAYS_PER_YEAR,
            "calendar.holidays",
            f"At most {MAX_HOLIDAYS_PER_YEAR} holidays a year.",
            "TOO_MANY",
        )
        days: dict[date, str] = {}
        for index, holiday in enumerate(calendar.holidays[:MAX_HOLIDAYS_PER_YEAR]):
            path = f"calendar.holidays[{index}]"
            day = _date(violations, holiday, "date", f"{path}.date")
            if day is not None and day.year != year:
                violations.add(f"{path}.date", f"Must be a day of {year}.", "OUT_OF_RANGE")
            elif day is not None and day in days:
                violations.add(f"{path}.date", "Listed twice; give each day once.", "DUPLICATE")
            elif day is not None:
                days[day] = holiday.name.strip()
            if not holiday.name.strip() or len(holiday.name) > 200:
                violations.add(
                    f"{path}.name", "Required: the holiday's name, at most 200 characters.", "REQUIRED"
                )
        violations.raise_if_any()
        key = idempotency_key(_METHOD + "UpdateHolidayCalendar", request, principal)

        def replace(session: Session) -> visa_pb2.HolidayCalendar:
            replace_holidays_of_year(session, holiday_table, year, days)
            return convert.holiday_calendar(year, holidays_of_year(session, holiday_table, year))

        return await self.idempotency.run(self.database, key, visa_pb2.HolidayCalendar, replace)


def _filter(violations: Violations, enum: Any, value: int, prefix: str, field: str) -> str | None:
    if value == 0:
        return None
    name = _enum_name(enum, value, prefix)
    if name is None:
        violations.add(field, "Must be a value of the enum, or unspecified for any.", "OUT_OF_RANGE")
    return name


def _check_country(violations: Violations, code: str, field: str) -> None:
    violations.check(
        is_country_code(code),
        field,
        "Must be an ISO 3166-1 alpha-3 code in capitals, for example DEU.",
        "FORMAT",
    )


def _facts(applicant: ApplicantRow) -> VisaFacts:
    assert applicant.valid_from is not None and applicant.valid_until is not None
    return VisaFacts(
        passport_number=applicant.passport_number,
        valid_from=applicant.valid_from,
        valid_until=applicant.valid_until,
        entry_used=applicant.entry_at is not None,
    )


def _no_visa_yet(applicant: ApplicantRow) -> Exception:
    state = "was refused" if applicant.decision == Decision.REFUSED else "has no decision yet"
    return FailedPrecondition(
        message=f"There is no e-visa to download: the applicant {state}.",
        reason="EVISA_NOT_ISSUED",
        metadata={"decision": applicant.decision or "PENDING"},
    )


def _iso(value: date_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _document_facts(visa: visa_pb2.EVisa) -> list[tuple[str, str]]:
    return [
        ("Visa number", visa.visa_number),
        ("Application number", visa.application_number),
        ("Surname", visa.surname),
        ("Given names", visa.given_names),
        ("Date of birth", _iso(visa.date_of_birth)),
        ("Nationality", visa.nationality),
        ("Passport number", visa.passport_number),
        ("Valid from", _iso(visa.valid_from)),
        ("Valid until", _iso(visa.valid_until)),
        ("Duration of stay", f"{visa.stay_days} days"),
    ]
