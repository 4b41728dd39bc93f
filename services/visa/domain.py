"""The rules of ASAN Viza: who may apply, what a valid application is, the application and
decision state machine, and what an e-visa allows at the border.

Pure: no I/O, no protobuf, and nothing that imports grpc (the event worker, which runs under
eventlet, uses these rules): a broken state rule is a StateConflict, which the servicer
answers as FAILED_PRECONDITION. Field violations use the request's field paths
("application.applicants[1].passport_number") and these stable reasons: REQUIRED, FORMAT,
TOO_LONG, TOO_MANY, DUPLICATE, OUT_OF_RANGE, UNKNOWN_COUNTRY, VISA_NOT_REQUIRED,
EVISA_NOT_AVAILABLE, PASSPORT_EXPIRES_TOO_SOON, ARRIVAL_TOO_SOON, ARRIVAL_TOO_FAR,
ARRIVAL_IN_PAST, IN_FUTURE.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from services.runtime.baku_time import baku_date, end_of_baku_day
from services.runtime.identifiers import is_country_code, is_passport_number
from services.runtime.workdays import add_working_days
from services.visa.names import latin_capitals

if TYPE_CHECKING:
    from services.runtime.validation import Violations


@dataclass
class StateConflict(Exception):
    """A transition the state machine does not allow; `reason` is the stable error reason."""

    message: str
    reason: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)


# --- Enumerations (the value is what the database stores) ------------------------------------


class Speed(StrEnum):
    STANDARD = "STANDARD"
    URGENT = "URGENT"


class ApplicationStatus(StrEnum):
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    SUBMITTED = "SUBMITTED"
    DECIDED = "DECIDED"
    EXPIRED = "EXPIRED"


class Decision(StrEnum):
    APPROVED = "APPROVED"
    REFUSED = "REFUSED"


class CountryRule(StrEnum):
    EVISA = "EVISA"
    VISA_FREE = "VISA_FREE"
    EMBASSY = "EMBASSY"


class VerificationResult(StrEnum):
    VALID = "VALID"
    NOT_YET_VALID = "NOT_YET_VALID"
    EXPIRED = "EXPIRED"
    WRONG_PASSPORT = "WRONG_PASSPORT"
    ALREADY_USED = "ALREADY_USED"


# --- Limits ----------------------------------------------------------------------------------

MAX_APPLICANTS = 10  # a family application: 2 to 10 people, one payment
EVISA_VALIDITY_DAYS = 90  # valid from the arrival day, 90 days in all
EVISA_STAY_DAYS = 30
EVISA_ENTRIES = 1
PASSPORT_MARGIN_MONTHS = 3  # the passport must outlive the visa by this much
MAX_DAYS_AHEAD = 90  # an application is made at most this long before arrival
MAX_NAME_LENGTH = 100
MAX_AGE_YEARS = 130
FEE_CODES: Mapping[Speed, str] = {Speed.STANDARD: "visa.evisa.standard", Speed.URGENT: "visa.evisa.urgent"}

# A full passport number: shorter ones are document series, not numbers.
MIN_PASSPORT_NUMBER_LENGTH = 5
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}")
MAX_EMAIL_LENGTH = 254


# --- Due times --------------------------------------------------------------------------------

STANDARD_WORKING_DAYS = 3
URGENT_HOURS = 3


def standard_due_time(paid: datetime, holidays: Collection[date]) -> datetime:
    """A STANDARD application is due at the end (24:00 in Baku) of the third working day after
    the Baku day of its payment."""
    return end_of_baku_day(add_working_days(baku_date(paid), STANDARD_WORKING_DAYS, holidays))


def urgent_due_time(paid: datetime) -> datetime:
    """An URGENT application is due three hours after its payment, whatever the day."""
    return paid.astimezone(UTC) + timedelta(hours=URGENT_HOURS)


def due_time(speed: Speed, paid: datetime, holidays: Collection[date]) -> datetime:
    return urgent_due_time(paid) if speed is Speed.URGENT else standard_due_time(paid, holidays)


def earliest_standard_arrival(today: date, holidays: Collection[date]) -> date:
    """A standard application made `today` needs its 3 working days before the arrival day."""
    return add_working_days(today, STANDARD_WORKING_DAYS, holidays) + timedelta(days=1)


# --- What an application says ----------------------------------------------------------------


@dataclass(frozen=True)
class CountryPolicy:
    country_code: str
    name: str
    rule: CountryRule
    visa_free_stay_days: int | None
    version: int


@dataclass(frozen=True)
class PolicyChange:
    """An admin's new rule for one nationality: the next version of its country-table row."""

    country_code: str
    name: str
    rule: CountryRule
    visa_free_stay_days: int | None


@dataclass(frozen=True)
class NewApplicant:
    """One applicant as read from the request; a date that was missing or impossible is None
    (reported when the request was read), and so is an enum left unspecified (reported here as
    REQUIRED) or set to a number the contract does not define (reported when read)."""

    surname: str
    given_names: str
    date_of_birth: date | None
    sex: str | None
    nationality: str
    passport_number: str
    passport_expiry: date | None
    email: str


@dataclass(frozen=True)
class NewApplication:
    applicants: Sequence[NewApplicant]
    arrival: date | None
    purpose: str | None
    speed: Speed | None


def visa_validity(arrival: date) -> tuple[date, date]:
    """First and last day of an e-visa starting on `arrival`: 90 days, both ends included."""
    return arrival, arrival + timedelta(days=EVISA_VALIDITY_DAYS - 1)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 May + 3 months = 31 Aug,
    30 Nov + 3 months = 28 or 29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def earliest_passport_expiry(arrival: date) -> date:
    """The passport must be valid at least 3 months after the visa's last day."""
    return add_months(visa_validity(arrival)[1], PASSPORT_MARGIN_MONTHS)


def validate_application(
    new: NewApplication,
    policies: Mapping[str, CountryPolicy],
    holidays: Collection[date],
    today: date,
    violations: Violations,
    *,
    prefix: str = "application",
) -> None:
    """Adds one violation per broken rule, every rule at once. `today` is the Baku date."""
    count = len(new.applicants)
    if count == 0:
        violations.add(f"{prefix}.applicants", "Required: 1 to 10 applicants.", "REQUIRED")
    elif count > MAX_APPLICANTS:
        violations.add(
            f"{prefix}.applicants",
            f"At most {MAX_APPLICANTS} people apply together; it has {count}. Split the family into "
            "two applications.",
            "TOO_MANY",
        )
    _check_arrival(new, holidays, today, violations, prefix)
    if new.purpose is None and not violations.has(f"{prefix}.purpose"):
        violations.add(f"{prefix}.purpose", "Required: the purpose of travel.", "REQUIRED")
    if new.speed is None and not violations.has(f"{prefix}.speed"):
        violations.add(f"{prefix}.speed", "Required: STANDARD or URGENT.", "REQUIRED")
    seen: set[str] = set()
    for index, applicant in enumerate(new.applicants[:MAX_APPLICANTS]):
        path = f"{prefix}.applicants[{index}]"
        _check_applicant(applicant, new.arrival, policies, today, violations, path=path)
        if applicant.passport_number in seen:
            violations.add(
                f"{path}.passport_number", "Each applicant needs their own passport number.", "DUPLICATE"
            )
        seen.add(applicant.passport_number)


def _check_arrival(
    new: NewApplication, holidays: Collection[date], today: date, violations: Violations, prefix: str
) -> None:
    arrival = new.arrival
    path = f"{prefix}.arrival_date"
    if arrival is None:
        return  # missing or malformed: reported when the request was read
    if arrival < today:
        violations.add(path, "Must not be in the past.", "ARRIVAL_IN_PAST")
    elif arrival > today + timedelta(days=MAX_DAYS_AHEAD):
        violations.add(
            path,
            f"Apply at most {MAX_DAYS_AHEAD} days before arrival; that is after {today}.",
            "ARRIVAL_TOO_FAR",
        )
    elif new.speed is Speed.STANDARD and arrival < (earliest := earliest_standard_arrival(today, holidays)):
        violations.add(
            path,
            f"A standard application needs 3 working days: arrive on {earliest.isoformat()} or later, "
            "or choose URGENT.",
            "ARRIVAL_TOO_SOON",
        )


def _check_applicant(
    applicant: NewApplicant,
    arrival: date | None,
    policies: Mapping[str, CountryPolicy],
    today: date,
    violations: Violations,
    *,
    path: str,
) -> None:
    _check_name(applicant.surname, f"{path}.surname", violations, required=True)
    _check_name(applicant.given_names, f"{path}.given_names", violations, required=False)
    if applicant.date_of_birth is not None:
        if applicant.date_of_birth > today:
            violations.add(f"{path}.date_of_birth", "Must not be in the future.", "IN_FUTURE")
        elif applicant.date_of_birth.year < today.year - MAX_AGE_YEARS:
            violations.add(f"{path}.date_of_birth", "Must be a real date of birth.", "OUT_OF_RANGE")
    if applicant.sex is None and not violations.has(f"{path}.sex"):
        violations.add(f"{path}.sex", "Required: as printed in the passport.", "REQUIRED")
    _check_nationality(applicant.nationality, policies, violations, f"{path}.nationality")
    if not applicant.passport_number:
        violations.add(f"{path}.passport_number", "Required: the passport number.", "REQUIRED")
    elif not is_passport_number(applicant.passport_number, MIN_PASSPORT_NUMBER_LENGTH):
        violations.add(
            f"{path}.passport_number",
            "Must be 5 to 20 capital Latin letters and digits, without spaces.",
            "FORMAT",
        )
    if applicant.passport_expiry is not None and arrival is not None:
        needed = earliest_passport_expiry(arrival)
        violations.check(
            applicant.passport_expiry >= needed,
            f"{path}.passport_expiry_date",
            f"The passport must be valid until at least {needed.isoformat()}: 3 months after the "
            f"e-visa's last day, {visa_validity(arrival)[1].isoformat()}.",
            "PASSPORT_EXPIRES_TOO_SOON",
        )
    if not applicant.email:
        violations.add(f"{path}.email", "Required: where the e-visa is sent.", "REQUIRED")
    elif len(applicant.email) > MAX_EMAIL_LENGTH or not EMAIL.fullmatch(applicant.email):
        violations.add(f"{path}.email", "Must be an e-mail address, for example anna@example.com.", "FORMAT")


def _check_name(value: str, path: str, violations: Violations, *, required: bool) -> None:
    if not value.strip():
        if required:
            violations.add(path, "Required: as printed in the passport.", "REQUIRED")
    elif len(value) > MAX_NAME_LENGTH:
        violations.add(path, f"Must be at most {MAX_NAME_LENGTH} characters.", "TOO_LONG")
    elif not latin_capitals(value):
        violations.add(path, "Must contain letters.", "FORMAT")


def _check_nationality(
    code: str, policies: Mapping[str, CountryPolicy], violations: Violations, path: str
) -> None:
    if not code:
        violations.add(path, "Required: an ISO 3166-1 alpha-3 code, for example DEU.", "REQUIRED")
        return
    if not is_country_code(code):
        violations.add(path, "Must be an ISO 3166-1 alpha-3 code in capitals, for example DEU.", "FORMAT")
        return
    policy = policies.get(code)
    if policy is None:
        violations.add(path, "No country has this code; GetCountryPolicy lists the rules.", "UNKNOWN_COUNTRY")
    elif policy.rule is CountryRule.VISA_FREE:
        violations.add(
            path,
            f"Citizens of {policy.name} need no visa for stays of up to {policy.visa_free_stay_days} days.",
            "VISA_NOT_REQUIRED",
        )
    elif policy.rule is CountryRule.EMBASSY:
        violations.add(
            path,
            f"Citizens of {policy.name} cannot get an e-visa: apply at an Azerbaijani embassy or consulate.",
            "EVISA_NOT_AVAILABLE",
        )


# --- The state machine -----------------------------------------------------------------------


def ensure_submitted(status: ApplicationStatus) -> None:
    """Decisions are made only on a paid application that still has undecided applicants."""
    if status is ApplicationStatus.SUBMITTED:
        return
    hints = {
        ApplicationStatus.AWAITING_PAYMENT: "its fee has not been paid yet",
        ApplicationStatus.DECIDED: "every applicant has a decision already",
        ApplicationStatus.EXPIRED: "its fee was never paid; the applicant must apply again",
    }
    hint = hints.get(status, "")
    raise StateConflict(
        message=f"An application in status {status} cannot be decided: {hint}.",
        reason="APPLICATION_STATE_CONFLICT",
        metadata={"status": str(status)},
    )


def ensure_undecided(decision: Decision | None, passport_number: str) -> None:
    if decision is None:
        return
    raise StateConflict(
        message=f"The applicant with passport {passport_number} was {decision.lower()} already; "
        "a decision is final.",
        reason="APPLICANT_ALREADY_DECIDED",
        metadata={"decision": str(decision)},
    )


# --- At the border ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VisaFacts:
    passport_number: str
    valid_from: date
    valid_until: date
    entry_used: bool


def verify(visa: VisaFacts, passport_shown: str, today: date) -> VerificationResult:
    """What a border officer is told, first failing check wins: the passport, the single
    entry, then the dates (`today` in Baku)."""
    if passport_shown != visa.passport_number:
        return VerificationResult.WRONG_PASSPORT
    if visa.entry_used:
        return VerificationResult.ALREADY_USED
    if today < visa.valid_from:
        return VerificationResult.NOT_YET_VALID
    if today > visa.valid_until:
        return VerificationResult.EXPIRED
    return VerificationResult.VALID


# --- Sandbox and watchlist -------------------------------------------------------------------

SANDBOX_APPROVE_PREFIX = "SBXA"
SANDBOX_REFUSE_PREFIX = "SBXR"


def sandbox_decision(passport_number: str) -> Decision | None:
    """The outcome a sandbox passport number asks for (only when sandbox decisions are on)."""
    if passport_number.startswith(SANDBOX_APPROVE_PREFIX):
        return Decision.APPROVED
    if passport_number.startswith(SANDBOX_REFUSE_PREFIX):
        return Decision.REFUSED
    return None


@dataclass(frozen=True)
class WatchlistEntry:
    passport_number: str | None
    normalized_name: str | None
    date_of_birth: date | None


def on_watchlist(
    entries: Sequence[WatchlistEntry], passport_number: str, normalized_name: str, date_of_birth: date
) -> bool:
    """A hit on the passport number alone, or on the normalised name together with the date of birth."""
    for entry in entries:
        if entry.passport_number and entry.passport_number == passport_number:
            return True
        if entry.normalized_name == normalized_name and entry.date_of_birth == date_of_birth:
            return True
    return False
