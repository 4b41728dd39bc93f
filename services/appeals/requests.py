"""AppealsService requests in the domain's terms: each function reads a request into domain
values, reports every bad field at once as one INVALID_ARGUMENT (named by its path in the
request), and raises it. What needs the database (the category's attributes, the agency, the
appeal's state) is checked afterwards, by the rules. A field the contract marks REQUIRED
(`google.api.field_behavior`) that is left out is reported as REQUIRED, and nothing else
(tests/gateway/test_required_fields.py holds the two together).

Updates take an `update_mask` (AIP-134): `update_paths` reads it against the resource's fields,
and the named fields are merged into the current entry before the whole is checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TypeVar

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.type import date_pb2

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2
from services.appeals.attachments import NewAttachment, check_attachments
from services.appeals.catalogue import (
    Agency,
    AttributeDefinition,
    AttributeType,
    Category,
    Choice,
    Names,
    check_agency,
    check_agency_code,
    check_category,
    check_category_code,
)
from services.appeals.content import (
    AppealContent,
    LinkedObject,
    LinkedService,
    Location,
    check_linked_object,
    check_location,
    check_text,
)
from services.appeals.deadlines import MAX_EXTENSION_WORKING_DAYS
from services.appeals.queries import AppealFilter, PublicFilter
from services.appeals.workflow import ExtensionKind, Outcome, Rating
from services.runtime import protos
from services.runtime.baku_time import BAKU
from services.runtime.enums import stored_name
from services.runtime.holidays import MAX_NAME_LENGTH as MAX_HOLIDAY_NAME
from services.runtime.validation import Violations, check_request_id, update_paths

M = TypeVar("M", bound=Message)

APPEAL_NUMBER = re.compile(r"MR-[0-9]{4}-[0-9]{6}")
MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
MAX_REASON_LENGTH = 1000
MAX_ANSWER_LENGTH = 8000
# What payment keeps with a refund (RefundPaymentRequest.reason).
MAX_REFUND_REASON_LENGTH = 500
MAX_COPIES = 5
MAX_EARLIER_APPEALS = 20
MAX_HOLIDAYS_PER_YEAR = 60
FIRST_YEAR, LAST_YEAR = 2000, 2100
ANY_VALUE = "Must be a value of the enum, or unspecified for any."


def attachment_index(request: appeals_service_pb2.GetAppealAttachmentRequest) -> int:
    violations = Violations()
    if request.appeal_number:
        check_appeal_number(violations, request.appeal_number)
    violations.check(request.index >= 0, "index", "Must be an attachment's place, from 0.", "OUT_OF_RANGE")
    violations.require(request)
    violations.raise_if_any()
    return request.index


def check_appeal_number(violations: Violations, number: str, field: str = "appeal_number") -> None:
    violations.check(
        APPEAL_NUMBER.fullmatch(number) is not None,
        field,
        "Must be an appeal number as SubmitAppeal returned it, e.g. MR-2026-000123.",
        "FORMAT",
    )


def _reason(violations: Violations, text: str, field: str = "reason") -> str:
    if not text.strip():
        violations.add(field, "Required: the reason, which the citizen reads.", "REQUIRED")
    elif len(text) > MAX_REASON_LENGTH:
        violations.add(field, f"At most {MAX_REASON_LENGTH} characters.", "TOO_LONG")
    return text.strip()


def _names(value: appeals_pb2.LocalizedText) -> Names:
    return Names(value.az.strip(), value.en.strip(), value.ru.strip())


# --- The catalogue ------------------------------------------------------------------------------


# The fields of an Agency an admin changes; `code` names it, `version` is ours.
UPDATABLE_AGENCY_FIELDS = ("name", "supervisor_subjects")
# The fields of a Category an admin changes; `code` names it, `version` is ours.
UPDATABLE_CATEGORY_FIELDS = ("name", "agency_code", "attributes", "active")
# The field of a HolidayCalendar an admin changes; `year` names it.
UPDATABLE_CALENDAR_FIELDS = ("holidays",)


def _merged(given: M, current: M | None, paths: frozenset[str] | None) -> M:
    """The entry after an update: the given one whole, or the current one (an empty one for a
    new entry) with the named fields replaced whole by the given ones."""
    if paths is None:
        return given
    merged = type(given)()
    if current is not None:
        merged.CopyFrom(current)
    FieldMask(paths=sorted(paths)).MergeMessage(
        given, merged, replace_message_field=True, replace_repeated_field=True
    )
    return merged


@dataclass(frozen=True)
class AgencyUpdate:
    """An admin's change of an agency, before it meets the current entry."""

    agency: appeals_pb2.Agency
    # The fields that change; None: the whole agency.
    paths: frozenset[str] | None

    @property
    def code(self) -> str:
        return self.agency.code


@dataclass(frozen=True)
class CategoryUpdate:
    """An admin's change of a category, before it meets the current entry."""

    category: appeals_pb2.Category
    # The fields that change; None: the whole category.
    paths: frozenset[str] | None

    @property
    def code(self) -> str:
        return self.category.code


def agency_update(request: appeals_service_pb2.UpdateAgencyRequest) -> AgencyUpdate:
    """The update asked for. A whole agency is judged here, every field at once; one that changes
    some fields is judged by `updated_agency` once they are merged with the current entry."""
    violations = Violations()
    check_request_id(violations, request.request_id)
    paths = None
    if violations.check(
        request.HasField("agency"), "agency", "Required: the agency, with its code.", "REQUIRED"
    ):
        check_agency_code(request.agency.code, violations, "agency.code")
        paths = update_paths(
            violations, request.update_mask, appeals_pb2.Agency.DESCRIPTOR, UPDATABLE_AGENCY_FIELDS
        )
        if paths is None:
            _agency(request.agency, violations)
    violations.require(request)
    violations.raise_if_any()
    return AgencyUpdate(request.agency, paths)


def updated_agency(update: AgencyUpdate, current: appeals_pb2.Agency | None) -> Agency:
    """The agency after the update; raises INVALID_ARGUMENT with every bad field of it."""
    violations = Violations()
    merged = _merged(update.agency, current, update.paths)
    merged.code = update.code  # a new agency has no current entry to take it from
    agency = _agency(merged, violations)
    violations.raise_if_any()
    return agency


def _agency(given: appeals_pb2.Agency, violations: Violations) -> Agency:
    agency = Agency(given.code, _names(given.name), tuple(given.supervisor_subjects))
    check_agency(agency, violations)
    return agency


def category_update(request: appeals_service_pb2.UpdateCategoryRequest) -> CategoryUpdate:
    """The update asked for. A whole category is judged here, every field at once; one that
    changes some fields is judged by `updated_category` once they are merged with the current."""
    violations = Violations()
    check_request_id(violations, request.request_id)
    paths = None
    if violations.check(
        request.HasField("category"), "category", "Required: the category, with its code.", "REQUIRED"
    ):
        check_category_code(request.category.code, violations, "category.code")
        paths = update_paths(
            violations, request.update_mask, appeals_pb2.Category.DESCRIPTOR, UPDATABLE_CATEGORY_FIELDS
        )
        if paths is None:
            _category(request.category, violations)
    violations.require(request)
    violations.raise_if_any()
    return CategoryUpdate(request.category, paths)


def updated_category(update: CategoryUpdate, current: appeals_pb2.Category | None) -> Category:
    """The category after the update; raises INVALID_ARGUMENT with every bad field of it."""
    violations = Violations()
    merged = _merged(update.category, current, update.paths)
    merged.code = update.code  # a new category has no current entry to take it from
    category = _category(merged, violations)
    violations.raise_if_any()
    return category


def _category(given: appeals_pb2.Category, violations: Violations) -> Category:
    attributes = []
    for index, a in enumerate(given.attributes):
        path = f"category.attributes[{index}]"
        kind = stored_name(appeals_pb2.AttributeType, a.type, "ATTRIBUTE_TYPE_", violations, f"{path}.type")
        if kind is None and not violations.has(f"{path}.type"):
            violations.add(f"{path}.type", "Required: the type of the answer.", "REQUIRED")
        attributes.append(
            AttributeDefinition(
                code=a.code,
                name=_names(a.name),
                type=AttributeType(kind) if kind else AttributeType.STRING,
                required=a.required,
                choices=tuple(Choice(c.key, _names(c.name)) for c in a.choices),
            )
        )
    category = Category(
        code=given.code,
        name=_names(given.name),
        agency_code=given.agency_code,
        attributes=tuple(attributes),
        active=given.active,
    )
    check_category(category, violations)
    return category


def check_calendar_year(violations: Violations, year: int, field: str) -> None:
    violations.check(
        FIRST_YEAR <= year <= LAST_YEAR,
        field,
        f"Must be a year from {FIRST_YEAR} to {LAST_YEAR}.",
        "OUT_OF_RANGE",
    )


def holiday_calendar(request: appeals_service_pb2.UpdateHolidayCalendarRequest) -> dict[date, str]:
    """The year's holidays by day, each a day of the year, given once."""
    violations = Violations()
    check_request_id(violations, request.request_id)
    if not violations.check(
        request.HasField("calendar"), "calendar", "Required: the year and its holidays.", "REQUIRED"
    ):
        violations.require(request)
        violations.raise_if_any()
    update_paths(
        violations, request.update_mask, appeals_pb2.HolidayCalendar.DESCRIPTOR, UPDATABLE_CALENDAR_FIELDS
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
    violations.require(request)
    violations.raise_if_any()
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


# --- Submitting -------------------------------------------------------------------------------


def new_appeal(request: appeals_service_pb2.SubmitAppealRequest, violations: Violations) -> AppealContent:
    """The appeal as the citizen wrote it; raises at once when there is no appeal to read. The
    attributes are checked against the category afterwards, with these violations."""
    check_request_id(violations, request.request_id)
    violations.check(request.HasField("appeal"), "appeal", "Required: the appeal.", "REQUIRED")
    violations.require(request)
    violations.raise_if_any()
    given = request.appeal
    check_category_code(given.category_code, violations, "appeal.category_code")
    check_text(given.text, violations, "appeal.text")
    location = None
    if given.HasField("location"):
        location = Location(
            given.location.latitude_e6, given.location.longitude_e6, given.location.address.strip()
        )
        check_location(location, violations, "appeal.location")
    linked = None
    if given.HasField("linked_object"):
        service = stored_name(
            appeals_pb2.LinkedService,
            given.linked_object.service,
            "LINKED_SERVICE_",
            violations,
            "appeal.linked_object.service",
        )
        if service is None and not violations.has("appeal.linked_object.service"):
            violations.add(
                "appeal.linked_object.service", "Required: which service the object is of.", "REQUIRED"
            )
        if service is not None:
            linked = LinkedObject(LinkedService(service), given.linked_object.object_id)
            check_linked_object(linked, violations, "appeal.linked_object")
    return AppealContent(
        category_code=given.category_code,
        text=given.text,
        attributes=[(a.code, list(a.values)) for a in given.attributes],
        location=location,
        linked_object=linked,
        publish=given.publish,
        attachments=check_attachments(
            [NewAttachment(a.file_name, a.content) for a in given.attachments],
            violations,
            "appeal.attachments",
        ),
    )


# --- The workflow ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    number: str
    executor: str | None


@dataclass(frozen=True)
class Forwarding:
    number: str
    agency_code: str
    reason: str
    copy_agency_codes: tuple[str, ...]


@dataclass(frozen=True)
class Extension:
    number: str
    kind: ExtensionKind
    working_days: int
    reason: str


@dataclass(frozen=True)
class RefundOrder:
    """The refund an answer asks for: `amount_minor` in `currency`, or everything refundable."""

    full: bool
    amount_minor: int
    currency: str
    reason: str


@dataclass(frozen=True)
class Answer:
    number: str
    outcome: Outcome
    text: str
    refund: RefundOrder | None = None


@dataclass(frozen=True)
class Unconsidered:
    number: str
    earlier_numbers: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class RatingGiven:
    number: str
    rating: Rating
    comment: str


@dataclass(frozen=True)
class Reopening:
    number: str
    reason: str


def _start(request_id: str, number: str) -> Violations:
    violations = Violations()
    check_request_id(violations, request_id)
    if number:
        check_appeal_number(violations, number)
    return violations


def assignment(request: appeals_service_pb2.AssignAppealRequest) -> Assignment:
    violations = _start(request.request_id, request.appeal_number)
    violations.check(len(request.executor) <= 255, "executor", "At most 255 characters.", "TOO_LONG")
    violations.require(request)
    violations.raise_if_any()
    return Assignment(request.appeal_number, request.executor.strip() or None)


def forwarding(request: appeals_service_pb2.ForwardAppealRequest) -> Forwarding:
    violations = _start(request.request_id, request.appeal_number)
    if request.agency_code:
        check_agency_code(request.agency_code, violations, "agency_code")
    reason = _reason(violations, request.reason)
    copies = tuple(request.copy_agency_codes)
    violations.check(
        len(copies) <= MAX_COPIES, "copy_agency_codes", f"At most {MAX_COPIES} copies.", "TOO_MANY"
    )
    for index, code in enumerate(copies[:MAX_COPIES]):
        check_agency_code(code, violations, f"copy_agency_codes[{index}]")
    violations.check(
        len(set(copies)) == len(copies) and request.agency_code not in copies,
        "copy_agency_codes",
        "Each agency once, and not the one the appeal is forwarded to.",
        "DUPLICATE",
    )
    violations.require(request)
    violations.raise_if_any()
    return Forwarding(request.appeal_number, request.agency_code, reason, copies)


def extension(request: appeals_service_pb2.ExtendAppealRequest) -> Extension:
    violations = _start(request.request_id, request.appeal_number)
    kind = stored_name(appeals_pb2.ExtensionKind, request.kind, "EXTENSION_KIND_", violations, "kind")
    if kind is None and not violations.has("kind"):
        violations.add("kind", "Required: STUDY or INFORMATION_REQUEST.", "REQUIRED")
    if kind == ExtensionKind.INFORMATION_REQUEST:
        violations.check(
            1 <= request.working_days <= MAX_EXTENSION_WORKING_DAYS,
            "working_days",
            f"The one extension is 1 to {MAX_EXTENSION_WORKING_DAYS} working days (Art. 10).",
            "OUT_OF_RANGE",
        )
    elif kind == ExtensionKind.STUDY:
        violations.check(
            request.working_days == 0,
            "working_days",
            "Additional study sets 30 working days from the receipt; leave this 0.",
            "OUT_OF_RANGE",
        )
    reason = _reason(violations, request.reason)
    violations.require(request)
    violations.raise_if_any()
    assert kind is not None
    return Extension(request.appeal_number, ExtensionKind(kind), request.working_days, reason)


def answer(request: appeals_service_pb2.AnswerAppealRequest) -> Answer:
    violations = _start(request.request_id, request.appeal_number)
    outcome = stored_name(appeals_pb2.Outcome, request.outcome, "OUTCOME_", violations, "outcome")
    if outcome is None and not violations.has("outcome"):
        violations.add("outcome", "Required: how the appeal is answered.", "REQUIRED")
    if not request.text.strip():
        violations.add("text", "Required: the answer with its reasons.", "REQUIRED")
    elif len(request.text) > MAX_ANSWER_LENGTH:
        violations.add("text", f"At most {MAX_ANSWER_LENGTH} characters.", "TOO_LONG")
    refund = _refund_order(request, violations) if request.HasField("refund") else None
    violations.require(request)
    violations.raise_if_any()
    assert outcome is not None
    return Answer(request.appeal_number, Outcome(outcome), request.text.strip(), refund)


def _refund_order(request: appeals_service_pb2.AnswerAppealRequest, violations: Violations) -> RefundOrder:
    """An amount or `full`, exactly one; the amount is judged against the payment by payment."""
    order = request.refund
    given = order.HasField("amount")
    violations.check(
        given != order.full,
        "refund.amount",
        "Set either an amount or full (everything still refundable), not both.",
        "AMOUNT_OR_FULL",
    )
    if given:
        violations.check(
            order.amount.minor_units > 0,
            "refund.amount.minor_units",
            "Must be positive: the amount in minor units (qəpik for AZN).",
            "OUT_OF_RANGE",
        )
        currency = order.amount.currency_code
        if not currency:
            violations.add(
                "refund.amount.currency_code", "Required: the payment's currency, e.g. AZN.", "REQUIRED"
            )
        else:
            violations.check(
                re.fullmatch(r"[A-Z]{3}", currency) is not None,
                "refund.amount.currency_code",
                "Must be an ISO 4217 currency code, e.g. AZN.",
                "FORMAT",
            )
    reason = order.reason.strip()
    if not reason:
        violations.add("refund.reason", "Required: why the money is returned.", "REQUIRED")
    elif len(reason) > MAX_REFUND_REASON_LENGTH:
        violations.add("refund.reason", f"At most {MAX_REFUND_REASON_LENGTH} characters.", "TOO_LONG")
    return RefundOrder(order.full, order.amount.minor_units, order.amount.currency_code, reason)


def unconsidered(request: appeals_service_pb2.LeaveAppealUnconsideredRequest) -> Unconsidered:
    violations = _start(request.request_id, request.appeal_number)
    earlier = tuple(request.earlier_appeal_numbers)
    violations.check(
        1 <= len(earlier) <= MAX_EARLIER_APPEALS,
        "earlier_appeal_numbers",
        f"Required: the earlier appeals answered with reasons, at most {MAX_EARLIER_APPEALS}.",
        "REQUIRED",
    )
    for index, number in enumerate(earlier[:MAX_EARLIER_APPEALS]):
        check_appeal_number(violations, number, f"earlier_appeal_numbers[{index}]")
    violations.check(
        len(set(earlier)) == len(earlier) and request.appeal_number not in earlier,
        "earlier_appeal_numbers",
        "Each earlier appeal once, and not this one.",
        "DUPLICATE",
    )
    reason = _reason(violations, request.reason)
    violations.require(request)
    violations.raise_if_any()
    return Unconsidered(request.appeal_number, earlier, reason)


def closing(request: appeals_service_pb2.CloseAppealRequest) -> str:
    violations = _start(request.request_id, request.appeal_number)
    violations.require(request)
    violations.raise_if_any()
    return request.appeal_number


def rating(request: appeals_service_pb2.RateAnswerRequest) -> RatingGiven:
    violations = _start(request.request_id, request.appeal_number)
    given = stored_name(appeals_pb2.Rating, request.rating, "RATING_", violations, "rating")
    if given is None and not violations.has("rating"):
        violations.add("rating", "Required: SATISFIED or UNSATISFIED.", "REQUIRED")
    violations.check(
        len(request.comment) <= MAX_REASON_LENGTH,
        "comment",
        f"At most {MAX_REASON_LENGTH} characters.",
        "TOO_LONG",
    )
    violations.require(request)
    violations.raise_if_any()
    assert given is not None
    return RatingGiven(request.appeal_number, Rating(given), request.comment.strip())


def reopening(request: appeals_service_pb2.ReopenAppealRequest) -> Reopening:
    violations = _start(request.request_id, request.appeal_number)
    reason = _reason(violations, request.reason)
    violations.require(request)
    violations.raise_if_any()
    return Reopening(request.appeal_number, reason)


# --- Views ----------------------------------------------------------------------------------


def appeal_filter(request: appeals_service_pb2.ListAppealsRequest, violations: Violations) -> AppealFilter:
    if request.agency_code:
        check_agency_code(request.agency_code, violations, "agency_code")
    return AppealFilter(
        status=stored_name(
            appeals_pb2.AppealStatus,
            request.status,
            "APPEAL_STATUS_",
            violations,
            "status",
            description=ANY_VALUE,
        ),
        executor=request.executor or None,
        overdue_only=request.overdue_only,
        escalated_only=request.escalated_only,
        agency_code=request.agency_code or None,
    )


def statistics_month(request: appeals_service_pb2.GetAppealStatisticsRequest) -> tuple[int, int]:
    violations = Violations()
    match = MONTH.fullmatch(request.month)
    month = (int(match.group(1)), int(match.group(2))) if match else None
    violations.check(
        not request.month
        or (month is not None and FIRST_YEAR <= month[0] <= LAST_YEAR and 1 <= month[1] <= 12),
        "month",
        "Must be a month as YYYY-MM, e.g. 2026-03.",
        "FORMAT",
    )
    if request.agency_code:
        check_agency_code(request.agency_code, violations, "agency_code")
    violations.require(request)
    violations.raise_if_any()
    assert month is not None
    return month


# --- The open Open311 view --------------------------------------------------------------------

JSON_SUFFIX = ".json"
OPEN311_DAYS = 90
OPEN311_MAX_REQUESTS = 1000
MAX_REQUEST_IDS = 100
OPEN311_STATUSES = {"open": True, "closed": False}


def _without_json(violations: Violations, file_name: str, field: str, example: str) -> str:
    """The name without its .json; an empty name is left for `Violations.require`."""
    violations.check(
        not file_name or file_name.endswith(JSON_SUFFIX),
        field,
        f"Must end in .json, e.g. {example}.",
        "FORMAT",
    )
    return file_name.removesuffix(JSON_SUFFIX)


def georeport_service_code(request: appeals_service_pb2.GetGeoReportServiceDefinitionRequest) -> str:
    violations = Violations()
    code = _without_json(violations, request.service_file, "service_file", "roads.damage.json")
    if code and not violations:
        check_category_code(code, violations, "service_file")
    violations.require(request)
    violations.raise_if_any()
    return code


def georeport_request_number(request: appeals_service_pb2.GetGeoReportRequestRequest) -> str:
    violations = Violations()
    number = _without_json(violations, request.request_file, "request_file", "MR-2026-000123.json")
    if number and not violations:
        check_appeal_number(violations, number, "request_file")
    violations.require(request)
    violations.raise_if_any()
    return number


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _w3c(violations: Violations, value: str, field: str) -> datetime | None:
    """A W3C date-time with its offset, or a date (its start in Baku); None when not given."""
    if not value:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=BAKU)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        violations.add(
            field, "Must be a W3C date-time with its offset, e.g. 2026-03-02T10:00:00+04:00.", "FORMAT"
        )
        return None
    return moment


def georeport_filter(request: appeals_service_pb2.GetGeoReportRequestsRequest, now: datetime) -> PublicFilter:
    """Open311's parameters of requests.json; numbers, when given, override the rest."""
    violations = Violations()
    numbers = _listed(request.service_request_id)
    violations.check(
        len(numbers) <= MAX_REQUEST_IDS, "service_request_id", f"At most {MAX_REQUEST_IDS} ids.", "TOO_MANY"
    )
    for number in numbers[:MAX_REQUEST_IDS]:
        check_appeal_number(violations, number, "service_request_id")
    codes = _listed(request.service_code)
    for code in codes:
        check_category_code(code, violations, "service_code")
    statuses = _listed(request.status)
    violations.check(
        all(status in OPEN311_STATUSES for status in statuses),
        "status",
        "Must be open, closed, or both comma-separated.",
        "FORMAT",
    )
    end = _w3c(violations, request.end_date, "end_date") or now
    start = _w3c(violations, request.start_date, "start_date") or end - timedelta(days=OPEN311_DAYS)
    violations.check(
        timedelta(0) < end - start <= timedelta(days=OPEN311_DAYS),
        "start_date",
        f"Must be before end_date, and at most {OPEN311_DAYS} days before it.",
        "OUT_OF_RANGE",
    )
    violations.raise_if_any()
    chosen = {OPEN311_STATUSES[status] for status in statuses}
    return PublicFilter(
        numbers=tuple(numbers),
        service_codes=tuple(codes),
        start=start,
        end=end,
        open=chosen.pop() if len(chosen) == 1 else None,
        limit=OPEN311_MAX_REQUESTS,
    )
