"""VisaService requests in the domain's terms: each function reads a request into domain values
and adds one field violation per bad field, named by its path in the request, for the servicer
to raise. CreateApplication's are raised together with the domain's own (validate_application),
which need the database's country table and calendar; a request with nothing to read (no
application, no policy, no calendar) is raised at once. A field the contract marks REQUIRED
(`google.api.field_behavior`) that is left out is reported as REQUIRED, and nothing else
(tests/gateway/test_required_fields.py holds the two together).

Updates take an `update_mask` (AIP-134): `update_paths` reads it against the resource's fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from google.protobuf.field_mask_pb2 import FieldMask
from google.type import date_pb2

from asan.visa.v1 import visa_pb2, visa_service_pb2
from services.runtime import protos
from services.runtime.enums import stored_name
from services.runtime.holidays import MAX_NAME_LENGTH as MAX_HOLIDAY_NAME
from services.runtime.identifiers import is_country_code
from services.runtime.validation import Violations, check_request_id, update_paths
from services.visa.domain import CountryRule, NewApplicant, NewApplication, PolicyChange, Speed
from services.visa.queries import ApplicationFilter
from services.visa.signing import CodeRejected, VisaSigner

APPLICATION_NUMBER = re.compile(r"EV-[0-9]{4}-[0-9A-Z]{8}")
MAX_HOLIDAYS_PER_YEAR = 60
MAX_COUNTRY_NAME = 100
MAX_VISA_FREE_STAY_DAYS = 365
FIRST_CALENDAR_YEAR, LAST_CALENDAR_YEAR = 2000, 2100
# An enum filter left unspecified lists every value.
ANY_VALUE = "Must be a value of the enum, or unspecified for any."


# --- Applying ----------------------------------------------------------------------------------


def new_application(
    request: visa_service_pb2.CreateApplicationRequest, violations: Violations
) -> NewApplication:
    """The application as the domain reads it; raises at once when there is no application to
    read. A date or enum that is missing stays None: the domain's rules report it."""
    check_request_id(violations, request.request_id)
    if not violations.check(
        request.HasField("application"), "application", "Required: the application.", "REQUIRED"
    ):
        violations.raise_if_any()
    a = request.application
    applicants = []
    for index, p in enumerate(a.applicants):
        path = f"application.applicants[{index}]"
        applicants.append(
            NewApplicant(
                surname=p.surname,
                given_names=p.given_names,
                date_of_birth=_date(
                    violations, p.date_of_birth, p.HasField("date_of_birth"), f"{path}.date_of_birth"
                ),
                sex=stored_name(visa_pb2.Sex, p.sex, "SEX_", violations, f"{path}.sex"),
                nationality=p.nationality,
                passport_number=p.passport_number,
                passport_expiry=_date(
                    violations,
                    p.passport_expiry_date,
                    p.HasField("passport_expiry_date"),
                    f"{path}.passport_expiry_date",
                ),
                email=p.email,
            )
        )
    speed = stored_name(visa_pb2.Speed, a.speed, "SPEED_", violations, "application.speed")
    return NewApplication(
        applicants=applicants,
        arrival=_date(violations, a.arrival_date, a.HasField("arrival_date"), "application.arrival_date"),
        purpose=stored_name(visa_pb2.Purpose, a.purpose, "PURPOSE_", violations, "application.purpose"),
        speed=Speed(speed) if speed else None,
    )


def check_application_number(violations: Violations, application_number: str) -> None:
    if not application_number:
        violations.add("application_number", "Required: the number CreateApplication returned.", "REQUIRED")
        return
    violations.check(
        APPLICATION_NUMBER.fullmatch(application_number) is not None,
        "application_number",
        "Must be the application number CreateApplication returned, e.g. EV-2026-7K3P9QXM.",
        "FORMAT",
    )


def check_application_pair(violations: Violations, application_number: str, passport_number: str) -> None:
    """An applicant names their application by its number and one of its passports."""
    check_application_number(violations, application_number)
    violations.check(bool(passport_number), "passport_number", "Required: the passport number.", "REQUIRED")


# --- Review ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRequest:
    """An officer's decision on one applicant; no refusal reason is an approval."""

    application_number: str
    passport_number: str
    refusal_reason: str | None = None


def approval(request: visa_service_pb2.ApproveApplicantRequest, violations: Violations) -> DecisionRequest:
    check_request_id(violations, request.request_id)
    check_application_pair(violations, request.application_number, request.passport_number)
    return DecisionRequest(request.application_number, request.passport_number)


def refusal(request: visa_service_pb2.RefuseApplicantRequest, violations: Violations) -> DecisionRequest:
    check_request_id(violations, request.request_id)
    check_application_pair(violations, request.application_number, request.passport_number)
    reason = stored_name(
        visa_pb2.RefusalReason, request.refusal_reason, "REFUSAL_REASON_", violations, "refusal_reason"
    )
    if reason is None and not violations.has("refusal_reason"):
        violations.add("refusal_reason", "Required: why the applicant is refused.", "REQUIRED")
    return DecisionRequest(request.application_number, request.passport_number, reason)


def application_filter(
    request: visa_service_pb2.ListApplicationsRequest, violations: Violations
) -> ApplicationFilter:
    return ApplicationFilter(
        status=stored_name(
            visa_pb2.ApplicationStatus,
            request.status,
            "APPLICATION_STATUS_",
            violations,
            "status",
            description=ANY_VALUE,
        ),
        speed=stored_name(
            visa_pb2.Speed, request.speed, "SPEED_", violations, "speed", description=ANY_VALUE
        ),
        overdue_only=request.overdue_only,
    )


# --- At the border -----------------------------------------------------------------------------


def visa_to_verify(
    request: visa_service_pb2.VerifyVisaRequest, signer: VisaSigner, violations: Violations
) -> str:
    """The visa number the border officer asks about: typed in, or read from the scanned code,
    whose signature must be ours."""
    check_request_id(violations, request.request_id)
    violations.check(
        bool(request.passport_number), "passport_number", "Required: the passport shown.", "REQUIRED"
    )
    which = request.WhichOneof("visa")
    if which is None:
        violations.add(
            "visa_number", "Required: the visa number or the scanned verification_code.", "REQUIRED"
        )
    if which != "verification_code":
        return request.visa_number
    try:
        return signer.verify(request.verification_code).visa_number
    except CodeRejected:
        violations.add(
            "verification_code",
            "The code's signature does not match: it was not issued by ASAN Viza or was altered.",
            "SIGNATURE_INVALID",
        )
        return ""


def check_entry(request: visa_service_pb2.RecordEntryRequest, violations: Violations) -> None:
    check_request_id(violations, request.request_id)
    violations.check(bool(request.visa_number), "visa_number", "Required: the visa number.", "REQUIRED")
    violations.check(
        bool(request.passport_number), "passport_number", "Required: the passport shown.", "REQUIRED"
    )


# --- Reference tables --------------------------------------------------------------------------


def check_country_code(violations: Violations, code: str, field: str) -> None:
    if not code:
        violations.add(field, "Required: an ISO 3166-1 alpha-3 code, for example DEU.", "REQUIRED")
        return
    violations.check(
        is_country_code(code),
        field,
        "Must be an ISO 3166-1 alpha-3 code in capitals, for example DEU.",
        "FORMAT",
    )


# The fields of a CountryPolicy an admin changes; `country_code` names it, `version` is ours.
UPDATABLE_POLICY_FIELDS = ("name", "rule", "visa_free_stay_days")
# The field of a HolidayCalendar an admin changes; `year` names it.
UPDATABLE_CALENDAR_FIELDS = ("holidays",)


@dataclass(frozen=True)
class PolicyUpdate:
    """An admin's change of one nationality's rule, before it meets the current rule."""

    policy: visa_pb2.CountryPolicy
    # The fields that change; None: the whole policy.
    paths: frozenset[str] | None

    @property
    def country_code(self) -> str:
        return self.policy.country_code


def policy_update(
    request: visa_service_pb2.UpdateCountryPolicyRequest, violations: Violations
) -> PolicyUpdate:
    """The update asked for. A whole policy is judged here, every field at once; one that
    changes some fields is judged by `policy_change` once they are merged with the current."""
    check_request_id(violations, request.request_id)
    if not violations.check(
        request.HasField("policy"), "policy", "Required: the policy, with its country_code.", "REQUIRED"
    ):
        return PolicyUpdate(request.policy, None)
    check_country_code(violations, request.policy.country_code, "policy.country_code")
    paths = update_paths(
        violations, request.update_mask, visa_pb2.CountryPolicy.DESCRIPTOR, UPDATABLE_POLICY_FIELDS
    )
    if paths is None:
        _judge_policy(request.policy, violations)
    return PolicyUpdate(request.policy, paths)


def updated_policy(update: PolicyUpdate, current: visa_pb2.CountryPolicy | None) -> visa_pb2.CountryPolicy:
    """The policy after the update: the given one whole, or the current one (none for a new
    country) with the fields the mask names taken from the given one."""
    if update.paths is None:
        return update.policy
    merged = visa_pb2.CountryPolicy(country_code=update.country_code)
    if current is not None:
        merged.CopyFrom(current)
    FieldMask(paths=sorted(update.paths)).MergeMessage(update.policy, merged)
    return merged


def policy_change(policy: visa_pb2.CountryPolicy) -> PolicyChange:
    """The rule as the domain reads it; raises INVALID_ARGUMENT with every bad field."""
    violations = Violations()
    rule = _judge_policy(policy, violations)
    violations.raise_if_any()
    assert rule is not None  # reported above otherwise
    return PolicyChange(
        country_code=policy.country_code,
        name=policy.name.strip(),
        rule=CountryRule(rule),
        visa_free_stay_days=policy.visa_free_stay_days or None,
    )


def _judge_policy(policy: visa_pb2.CountryPolicy, violations: Violations) -> str | None:
    """Adds a violation per bad field of the rule (its country code is judged with the
    request); the rule's stored name, or None if it has none."""
    if not policy.name.strip() or len(policy.name) > MAX_COUNTRY_NAME:
        violations.add(
            "policy.name",
            f"Required: the country's English name, at most {MAX_COUNTRY_NAME} characters.",
            "REQUIRED",
        )
    rule = stored_name(visa_pb2.CountryRule, policy.rule, "COUNTRY_RULE_", violations, "policy.rule")
    if rule is None:
        if not violations.has("policy.rule"):
            violations.add("policy.rule", "Required: EVISA, VISA_FREE or EMBASSY.", "REQUIRED")
    elif rule == CountryRule.VISA_FREE:
        violations.check(
            1 <= policy.visa_free_stay_days <= MAX_VISA_FREE_STAY_DAYS,
            "policy.visa_free_stay_days",
            f"A visa-free rule needs the longest stay, 1 to {MAX_VISA_FREE_STAY_DAYS} days.",
            "OUT_OF_RANGE",
        )
    else:
        violations.check(
            policy.visa_free_stay_days == 0,
            "policy.visa_free_stay_days",
            "Only a visa-free rule has a stay; leave it 0.",
            "OUT_OF_RANGE",
        )
    return rule


def check_calendar_year(violations: Violations, year: int, field: str) -> None:
    if year == 0:
        violations.add(field, "Required: the year, for example 2026.", "REQUIRED")
        return
    violations.check(
        FIRST_CALENDAR_YEAR <= year <= LAST_CALENDAR_YEAR,
        field,
        f"Must be a year from {FIRST_CALENDAR_YEAR} to {LAST_CALENDAR_YEAR}.",
        "OUT_OF_RANGE",
    )


def holiday_calendar(
    request: visa_service_pb2.UpdateHolidayCalendarRequest, violations: Violations
) -> dict[date, str]:
    """The year's holidays by day, each a day of `request.calendar.year`, given once."""
    check_request_id(violations, request.request_id)
    if not violations.check(
        request.HasField("calendar"), "calendar", "Required: the year and its holidays.", "REQUIRED"
    ):
        return {}
    update_paths(
        violations, request.update_mask, visa_pb2.HolidayCalendar.DESCRIPTOR, UPDATABLE_CALENDAR_FIELDS
    )
    calendar = request.calendar
    year = calendar.year
    check_calendar_year(violations, year, "calendar.year")
    violations.check(
        len(calendar.holidays) <= MAX_HOLIDAYS_PER_YEAR,
        "calendar.holidays",
        f"At most {MAX_HOLIDAYS_PER_YEAR} holidays a year.",
        "TOO_MANY",
    )
    days: dict[date, str] = {}
    for index, holiday in enumerate(calendar.holidays[:MAX_HOLIDAYS_PER_YEAR]):
        path = f"calendar.holidays[{index}]"
        day = _date(violations, holiday.date, holiday.HasField("date"), f"{path}.date")
        if day is not None and day.year != year:
            violations.add(f"{path}.date", f"Must be a day of {year}.", "OUT_OF_RANGE")
        elif day is not None and day in days:
            violations.add(f"{path}.date", "Listed twice; give each day once.", "DUPLICATE")
        elif day is not None:
            days[day] = holiday.name.strip()
        if not holiday.name.strip() or len(holiday.name) > MAX_HOLIDAY_NAME:
            violations.add(
                f"{path}.name",
                f"Required: the holiday's name, at most {MAX_HOLIDAY_NAME} characters.",
                "REQUIRED",
            )
    return days


def _date(violations: Violations, value: date_pb2.Date, present: bool, path: str) -> date | None:
    if not present:
        violations.add(path, "Required: a date (year, month, day).", "REQUIRED")
        return None
    try:
        return protos.to_date(value)
    except ValueError:
        violations.add(path, "Must be a real calendar date with year, month and day.", "FORMAT")
        return None
