"""AgroService requests in the domain's terms: each function reads a request into domain values
and adds one field violation per bad field, named by its path in the request; the readers of
whole requests end with `Violations.require` and raise, so that every field the contract marks
REQUIRED (`google.api.field_behavior`) that is left out is reported as REQUIRED, and nothing
else (tests/gateway/test_required_fields.py holds the two together). The own checks of a
field skip it when it is empty, and the checks of a message skip it when it is left out.

Updates take an `update_mask` (AIP-134), read by `update_paths` as visa reads it."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date
from typing import NoReturn

from asan.agro.v1 import agro_pb2, agro_service_pb2
from services.agro.accounts import is_azerbaijani_iban
from services.agro.geometry import Contour, ContourError, read_contour
from services.agro.subsidy import Coefficient, Condition, Crop, Tier
from services.runtime import protos
from services.runtime.enums import stored_name
from services.runtime.holidays import MAX_NAME_LENGTH as MAX_HOLIDAY_NAME
from services.runtime.identifiers import is_fin, is_voen
from services.runtime.validation import Violations, check_request_id, update_paths

DISTRICT = re.compile(r"[A-Z][A-Z_]{1,29}")
DECLARATION_NUMBER = re.compile(r"AGR-[0-9]{4}-[0-9A-Z]{8}")
REFERENCE = re.compile(r"[0-9A-Za-z/._-]{1,60}")
MAX_NAME = 200
MAX_MEMBERS = 100_000
MAX_REASON = 500
ANY_VALUE = "Must be a value of the enum, or unspecified for any."


@dataclass(frozen=True)
class NewFarmer:
    kind: str
    display_name: str
    cooperative_voen: str | None
    member_count: int
    iban: str
    input_card_reference: str


def new_farmer(request: agro_service_pb2.RegisterFarmerRequest, violations: Violations) -> NewFarmer:
    """Raises with every bad field."""
    check_request_id(violations, request.request_id)
    kind = _judge_farmer(request.farmer, violations) if request.HasField("farmer") else None
    violations.require(request)
    violations.raise_if_any()
    f = request.farmer
    return NewFarmer(
        kind=kind or "",
        display_name=f.display_name.strip(),
        cooperative_voen=f.cooperative_voen or None,
        member_count=f.member_count,
        iban=f.iban,
        input_card_reference=f.input_card_reference,
    )


def _judge_farmer(f: agro_pb2.Farmer, violations: Violations) -> str | None:
    """The farmer's kind; None when left out."""
    kind = stored_name(agro_pb2.FarmerKind, f.kind, "FARMER_KIND_", violations, "farmer.kind")
    if f.display_name and not f.display_name.strip():
        violations.add("farmer.display_name", "Required: the farmer's or cooperative's name.", "REQUIRED")
    violations.check(
        len(f.display_name.strip()) <= MAX_NAME,
        "farmer.display_name",
        f"At most {MAX_NAME} characters.",
        "OUT_OF_RANGE",
    )
    if kind == "COOPERATIVE":
        violations.check(
            is_voen(f.cooperative_voen),
            "farmer.cooperative_voen",
            "A cooperative gives its registration number (VÖEN), 10 digits.",
            "FORMAT",
        )
        violations.check(
            2 <= f.member_count <= MAX_MEMBERS,
            "farmer.member_count",
            "A cooperative has at least 2 members.",
            "OUT_OF_RANGE",
        )
    elif kind == "INDIVIDUAL":
        violations.check(
            not f.cooperative_voen and f.member_count == 0,
            "farmer.cooperative_voen",
            "Only a cooperative has a registration number and members; leave them empty.",
            "NOT_A_COOPERATIVE",
        )
    _check_accounts(violations, f.iban, f.input_card_reference, "farmer.")
    return kind


MAX_CARD_REFERENCE = 100


def _check_accounts(violations: Violations, iban: str, input_card_reference: str, prefix: str = "") -> None:
    """The farmer's accounts, as registered or changed; left empty, the caller says what that means."""
    violations.check(
        not iban or is_azerbaijani_iban(iban),
        f"{prefix}iban",
        "Must be an Azerbaijani IBAN: 28 characters, AZ, check digits, bank code, no spaces "
        "(e.g. AZ21NABZ00000000137010001944).",
        "FORMAT",
    )
    violations.check(
        len(input_card_reference) <= MAX_CARD_REFERENCE,
        f"{prefix}input_card_reference",
        f"The bank's reference of your agrarian card (never the card number), at most {MAX_CARD_REFERENCE} "
        "characters.",
        "FORMAT",
    )


@dataclass(frozen=True)
class ChangedAccounts:
    # None: the farmer's own (a citizen leaving it out).
    fin: str | None
    # None: unchanged.
    iban: str | None
    input_card_reference: str | None


def changed_accounts(
    request: agro_service_pb2.ChangeFarmerAccountsRequest, violations: Violations
) -> ChangedAccounts:
    """Raises with every bad field."""
    check_request_id(violations, request.request_id)
    check_fin(violations, request.fin)
    _check_accounts(violations, request.iban, request.input_card_reference)
    if not request.iban and not request.input_card_reference:
        for field in ("iban", "input_card_reference"):
            violations.add(
                field, "Give the new IBAN, the new agrarian card reference, or both.", "NOTHING_TO_CHANGE"
            )
    violations.require(request)
    violations.raise_if_any()
    return ChangedAccounts(
        fin=request.fin or None,
        iban=request.iban or None,
        input_card_reference=request.input_card_reference or None,
    )


def require_officers_fin(violations: Violations) -> NoReturn:
    """Raises: an officer changing a farmer's accounts names the farmer."""
    violations.add(
        "fin", "Required of officers: the FIN of the farmer whose accounts change.", "REQUIRED_FOR_OFFICERS"
    )
    violations.raise_if_any()
    raise AssertionError("raise_if_any raised")


def reissued_leg(request: agro_service_pb2.RetryPayoutLegRequest, violations: Violations) -> str:
    """The leg's stored name (CASH or CARD); raises with every bad field."""
    check_request_id(violations, request.request_id)
    check_declaration_number(violations, request.declaration_number)
    leg = stored_name(agro_pb2.PayoutLegKind, request.leg, "PAYOUT_LEG_KIND_", violations, "leg")
    violations.require(request)
    violations.raise_if_any()
    assert leg is not None  # unspecified is REQUIRED's violation
    return leg


def contour(violations: Violations, text: str, field: str) -> Contour | None:
    """The contour read; None when it is left out (`Violations.require` reports that) or bad."""
    if not text:
        return None
    try:
        return read_contour(text)
    except ContourError as error:
        violations.add(field, str(error), "INVALID_GEOMETRY")
        return None


@dataclass(frozen=True)
class NewParcel:
    registry_number: str
    land_document: str
    district: str
    contour_geojson: str
    contour: Contour


def new_parcel(request: agro_service_pb2.CreateParcelRequest, violations: Violations) -> NewParcel:
    """Raises with every bad field."""
    check_request_id(violations, request.request_id)
    p = request.parcel
    read = _judge_parcel(p, violations) if request.HasField("parcel") else None
    violations.require(request)
    violations.raise_if_any()
    assert read is not None
    return NewParcel(p.registry_number, p.land_document, p.district, p.contour_geojson, read)


def _judge_parcel(p: agro_pb2.Parcel, violations: Violations) -> Contour | None:
    violations.check(
        not p.registry_number or REFERENCE.fullmatch(p.registry_number) is not None,
        "parcel.registry_number",
        "The land registry number (letters, digits, / . _ -), at most 60.",
        "FORMAT",
    )
    violations.check(
        not p.land_document or REFERENCE.fullmatch(p.land_document) is not None,
        "parcel.land_document",
        "The land document's number (letters, digits, / . _ -), at most 60.",
        "FORMAT",
    )
    violations.check(
        not p.district or DISTRICT.fullmatch(p.district) is not None,
        "parcel.district",
        "The district's code in capital Latin letters, e.g. SAATLI.",
        "FORMAT",
    )
    return contour(violations, p.contour_geojson, "parcel.contour_geojson")


def eligible_area(request: agro_service_pb2.SetEligibleAreaRequest, violations: Violations) -> int:
    """Raises with every bad field."""
    check_request_id(violations, request.request_id)
    violations.check(
        request.eligible_area_square_metres >= 0,
        "eligible_area_square_metres",
        "Must be a positive number of square metres.",
        "OUT_OF_RANGE",
    )
    violations.require(request)
    violations.raise_if_any()
    return request.eligible_area_square_metres


@dataclass(frozen=True)
class NewDeclaration:
    parcel_id: str
    crop: Crop
    contour_geojson: str
    contour: Contour
    modern_irrigation: bool
    analysis_reference: str
    insurance_reference: str


def new_declaration(
    request: agro_service_pb2.QuoteSubsidyRequest | agro_service_pb2.CreateDeclarationRequest,
    violations: Violations,
) -> NewDeclaration:
    """Raises at once with every bad field: nothing can be checked against the parcel without them."""
    check_request_id(violations, request.request_id)
    d = request.declaration
    crop: str | None = None
    read: Contour | None = None
    if request.HasField("declaration"):
        crop = stored_name(agro_pb2.Crop, d.crop, "CROP_", violations, "declaration.crop")
        _check_references(d, violations)
        read = contour(violations, d.contour_geojson, "declaration.contour_geojson")
    violations.require(request)
    violations.raise_if_any()
    assert crop is not None and read is not None
    return NewDeclaration(
        parcel_id=d.parcel_id,
        crop=Crop(crop),
        contour_geojson=d.contour_geojson,
        contour=read,
        modern_irrigation=d.modern_irrigation,
        analysis_reference=d.analysis_reference,
        insurance_reference=d.insurance_reference,
    )


def _check_references(d: agro_pb2.Declaration, violations: Violations) -> None:
    for name, value in (
        ("analysis_reference", d.analysis_reference),
        ("insurance_reference", d.insurance_reference),
    ):
        violations.check(
            not value or REFERENCE.fullmatch(value) is not None,
            f"declaration.{name}",
            "Letters, digits and / . _ -, at most 60.",
            "FORMAT",
        )


def check_fin(violations: Violations, fin: str, field: str = "fin") -> None:
    """Left empty, `Violations.require` reports it."""
    violations.check(not fin or is_fin(fin), field, "Must be a FIN: 7 letters and digits.", "FORMAT")


def check_declaration_number(violations: Violations, number: str, field: str = "declaration_number") -> None:
    """Left empty, `Violations.require` reports it."""
    violations.check(
        not number or DECLARATION_NUMBER.fullmatch(number) is not None,
        field,
        "Must be a declaration number, e.g. AGR-2026-7K3P9QXM.",
        "FORMAT",
    )


def monitored_area(request: agro_service_pb2.RecordMonitoringRequest, violations: Violations) -> int:
    check_request_id(violations, request.request_id)
    check_declaration_number(violations, request.declaration_number)
    violations.check(
        request.monitored_area_square_metres >= 0,
        "monitored_area_square_metres",
        "Must be the measured area in square metres, 0 or more.",
        "OUT_OF_RANGE",
    )
    violations.require(request)
    violations.raise_if_any()
    return request.monitored_area_square_metres


def rejection_reason(request: agro_service_pb2.RejectDeclarationRequest, violations: Violations) -> str:
    check_request_id(violations, request.request_id)
    check_declaration_number(violations, request.declaration_number)
    reason = request.reason.strip()
    if request.reason and not reason:
        violations.add("reason", "Required: why, as the farmer will read it.", "REQUIRED")
    violations.check(len(reason) <= MAX_REASON, "reason", f"At most {MAX_REASON} characters.", "OUT_OF_RANGE")
    violations.require(request)
    violations.raise_if_any()
    return reason


def status_filter(request: agro_service_pb2.ListDeclarationsRequest, violations: Violations) -> str | None:
    return stored_name(
        agro_pb2.DeclarationStatus,
        request.status,
        "DECLARATION_STATUS_",
        violations,
        "status",
        description=ANY_VALUE,
    )


MAX_HUNDREDTHS = 1_000
MAX_TIERS = 5


def coefficient_table(
    request: agro_service_pb2.UpdateCoefficientTableRequest, violations: Violations
) -> list[Coefficient]:
    """The table's rows; raises with every bad field, since a bad row leaves no table to save."""
    check_request_id(violations, request.request_id)
    rows: list[Coefficient] = []
    if request.HasField("table"):
        update_paths(violations, request.update_mask, agro_pb2.CoefficientTable.DESCRIPTOR, ("coefficients",))
        check_season_year(violations, request.table.season_year, "table.season_year")
        rows = _coefficient_rows(request.table, violations)
    violations.require(request)
    violations.raise_if_any()
    return rows


def _coefficient_rows(table: agro_pb2.CoefficientTable, violations: Violations) -> list[Coefficient]:
    rows: list[Coefficient] = []
    seen: set[tuple[str, str]] = set()
    for index, row in enumerate(table.coefficients):
        path = f"table.coefficients[{index}]"
        crop = stored_name(agro_pb2.Crop, row.crop, "CROP_", violations, f"{path}.crop")
        condition = row.condition if row.condition in Condition.__members__ else None
        violations.check(
            not row.condition or condition is not None,
            f"{path}.condition",
            f"Must be one of {', '.join(Condition)}.",
            "OUT_OF_RANGE",
        )
        if (
            crop
            and condition
            and not violations.check(
                (crop, condition) not in seen,
                f"{path}",
                "This crop and condition are given twice.",
                "DUPLICATE",
            )
        ):
            continue
        tiers = tuple(Tier(t.from_hectares, t.coefficient_hundredths) for t in row.tiers)
        if row.per_tonne:
            violations.check(not tiers, f"{path}.tiers", "A crop paid per tonne has no tiers.", "PER_TONNE")
        else:
            violations.check(
                1 <= len(tiers) <= MAX_TIERS
                and tiers[0].from_hectares == 0
                and all(a.from_hectares < b.from_hectares for a, b in itertools.pairwise(tiers))
                and all(0 < t.hundredths <= MAX_HUNDREDTHS for t in tiers),
                f"{path}.tiers",
                f"1 to {MAX_TIERS} tiers, the first from 0 ha, each from more hectares than the one before, "
                f"coefficients 1 to {MAX_HUNDREDTHS} hundredths.",
                "TIERS",
            )
        if crop and condition:
            seen.add((crop, condition))
            rows.append(Coefficient(Crop(crop), Condition(condition), tiers, row.per_tonne))
    return rows


MAX_HOLIDAYS_PER_YEAR = 60


def holiday_calendar(
    request: agro_service_pb2.UpdateHolidayCalendarRequest, violations: Violations
) -> dict[date, str]:
    """The year's holidays by day, each a day of `request.calendar.year`, given once; raises
    with every bad field."""
    check_request_id(violations, request.request_id)
    days: dict[date, str] = {}
    if request.HasField("calendar"):
        update_paths(violations, request.update_mask, agro_pb2.HolidayCalendar.DESCRIPTOR, ("holidays",))
        days = _holidays(request.calendar, violations)
    violations.require(request)
    violations.raise_if_any()
    return days


def _holidays(calendar: agro_pb2.HolidayCalendar, violations: Violations) -> dict[date, str]:
    year = calendar.year
    check_season_year(violations, year, "calendar.year")
    violations.check(
        len(calendar.holidays) <= MAX_HOLIDAYS_PER_YEAR,
        "calendar.holidays",
        f"At most {MAX_HOLIDAYS_PER_YEAR} holidays a year.",
        "TOO_MANY",
    )
    days: dict[date, str] = {}
    for index, holiday in enumerate(calendar.holidays[:MAX_HOLIDAYS_PER_YEAR]):
        path = f"calendar.holidays[{index}]"
        day: date | None = None
        if holiday.HasField("date"):  # left out, `Violations.require` reports it
            try:
                day = protos.to_date(holiday.date)
            except ValueError:
                violations.add(
                    f"{path}.date", "Must be a real calendar date with year, month and day.", "FORMAT"
                )
        if day is not None and day.year != year:
            violations.add(f"{path}.date", f"Must be a day of {year}.", "OUT_OF_RANGE")
        elif day is not None and day in days:
            violations.add(f"{path}.date", "Listed twice; give each day once.", "DUPLICATE")
        elif day is not None:
            days[day] = holiday.name.strip()
        if holiday.name and not holiday.name.strip():
            violations.add(f"{path}.name", "Required: the holiday's name.", "REQUIRED")
        violations.check(
            len(holiday.name.strip()) <= MAX_HOLIDAY_NAME,
            f"{path}.name",
            f"At most {MAX_HOLIDAY_NAME} characters.",
            "OUT_OF_RANGE",
        )
    return days


def check_season_year(violations: Violations, year: int, field: str = "season_year") -> None:
    if year == 0:
        violations.add(field, "Required: the year, for example 2026.", "REQUIRED")
        return
    violations.check(2000 <= year <= 2100, field, "Must be a year from 2000 to 2100.", "OUT_OF_RANGE")
