"""AgroService requests in the domain's terms: each function reads a request into domain values
and adds one field violation per bad field, named by its path in the request."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date

from asan.agro.v1 import agro_pb2, agro_service_pb2
from services.agro.accounts import is_azerbaijani_iban
from services.agro.geometry import Contour, ContourError, read_contour
from services.agro.subsidy import Coefficient, Condition, Crop, Tier
from services.runtime import protos
from services.runtime.enums import stored_name
from services.runtime.holidays import MAX_NAME_LENGTH as MAX_HOLIDAY_NAME
from services.runtime.identifiers import is_voen
from services.runtime.validation import Violations, check_request_id

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
    check_request_id(violations, request.request_id)
    f = request.farmer
    kind = stored_name(agro_pb2.FarmerKind, f.kind, "FARMER_KIND_", violations, "farmer.kind")
    if kind is None and not violations.has("farmer.kind"):
        violations.add("farmer.kind", "Required: INDIVIDUAL or COOPERATIVE.", "REQUIRED")
    violations.check(
        0 < len(f.display_name.strip()) <= MAX_NAME,
        "farmer.display_name",
        f"Required: the farmer's or cooperative's name, at most {MAX_NAME} characters.",
        "REQUIRED",
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
    violations.check(
        is_azerbaijani_iban(f.iban),
        "farmer.iban",
        "Must be an Azerbaijani IBAN: 28 characters, AZ, check digits, bank code, no spaces "
        "(e.g. AZ21NABZ00000000137010001944).",
        "FORMAT",
    )
    violations.check(
        0 < len(f.input_card_reference) <= 100,
        "farmer.input_card_reference",
        "Required: the bank's reference of your agrarian card (never the card number).",
        "REQUIRED",
    )
    return NewFarmer(
        kind=kind or "",
        display_name=f.display_name.strip(),
        cooperative_voen=f.cooperative_voen or None,
        member_count=f.member_count,
        iban=f.iban,
        input_card_reference=f.input_card_reference,
    )


def contour(violations: Violations, text: str, field: str) -> Contour | None:
    if not text:
        violations.add(field, "Required: the contour as a GeoJSON Polygon (WGS 84).", "REQUIRED")
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
    check_request_id(violations, request.request_id)
    p = request.parcel
    violations.check(
        REFERENCE.fullmatch(p.registry_number) is not None,
        "parcel.registry_number",
        "Required: the land registry number (letters, digits, / . _ -), at most 60.",
        "FORMAT",
    )
    violations.check(
        REFERENCE.fullmatch(p.land_document) is not None,
        "parcel.land_document",
        "Required: the land document's number (letters, digits, / . _ -), at most 60.",
        "FORMAT",
    )
    violations.check(
        DISTRICT.fullmatch(p.district) is not None,
        "parcel.district",
        "Required: the district's code in capital Latin letters, e.g. SAATLI.",
        "FORMAT",
    )
    read = contour(violations, p.contour_geojson, "parcel.contour_geojson")
    violations.raise_if_any()
    assert read is not None
    return NewParcel(p.registry_number, p.land_document, p.district, p.contour_geojson, read)


def eligible_area(request: agro_service_pb2.SetEligibleAreaRequest, violations: Violations) -> int:
    check_request_id(violations, request.request_id)
    violations.check(bool(request.parcel_id), "parcel_id", "Required: the parcel's id.", "REQUIRED")
    violations.check(
        request.eligible_area_square_metres > 0,
        "eligible_area_square_metres",
        "Must be a positive number of square metres.",
        "OUT_OF_RANGE",
    )
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


def new_declaration(declaration: agro_pb2.Declaration, violations: Violations) -> NewDeclaration:
    """Raises at once with every bad field: nothing can be checked against the parcel without them."""
    d = declaration
    violations.check(bool(d.parcel_id), "declaration.parcel_id", "Required: the parcel's id.", "REQUIRED")
    crop = stored_name(agro_pb2.Crop, d.crop, "CROP_", violations, "declaration.crop")
    if crop is None and not violations.has("declaration.crop"):
        violations.add("declaration.crop", "Required: the crop sown.", "REQUIRED")
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
    read = contour(violations, d.contour_geojson, "declaration.contour_geojson")
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


def check_declaration_number(violations: Violations, number: str, field: str = "declaration_number") -> None:
    violations.check(
        DECLARATION_NUMBER.fullmatch(number) is not None,
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
    return request.monitored_area_square_metres


def rejection_reason(request: agro_service_pb2.RejectDeclarationRequest, violations: Violations) -> str:
    check_request_id(violations, request.request_id)
    check_declaration_number(violations, request.declaration_number)
    reason = request.reason.strip()
    violations.check(
        0 < len(reason) <= MAX_REASON,
        "reason",
        f"Required: why, as the farmer will read it, at most {MAX_REASON} characters.",
        "REQUIRED",
    )
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
    check_season_year(violations, request.table.season_year, "table.season_year")
    rows: list[Coefficient] = []
    seen: set[tuple[str, str]] = set()
    violations.check(
        bool(request.table.coefficients), "table.coefficients", "Required: the rows.", "REQUIRED"
    )
    for index, row in enumerate(request.table.coefficients):
        path = f"table.coefficients[{index}]"
        crop = stored_name(agro_pb2.Crop, row.crop, "CROP_", violations, f"{path}.crop")
        if crop is None and not violations.has(f"{path}.crop"):
            violations.add(f"{path}.crop", "Required: the crop.", "REQUIRED")
        condition = row.condition if row.condition in Condition.__members__ else None
        violations.check(
            condition is not None,
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
    violations.raise_if_any()
    return rows


MAX_HOLIDAYS_PER_YEAR = 60


def holiday_calendar(
    request: agro_service_pb2.UpdateHolidayCalendarRequest, violations: Violations
) -> dict[date, str]:
    """The year's holidays by day, each a day of `request.calendar.year`, given once."""
    check_request_id(violations, request.request_id)
    year = request.calendar.year
    check_season_year(violations, year, "calendar.year")
    violations.check(
        len(request.calendar.holidays) <= MAX_HOLIDAYS_PER_YEAR,
        "calendar.holidays",
        f"At most {MAX_HOLIDAYS_PER_YEAR} holidays a year.",
        "TOO_MANY",
    )
    days: dict[date, str] = {}
    for index, holiday in enumerate(request.calendar.holidays[:MAX_HOLIDAYS_PER_YEAR]):
        path = f"calendar.holidays[{index}]"
        try:
            day: date | None = protos.to_date(holiday.date)
        except ValueError:
            day = None
            violations.add(f"{path}.date", "Must be a real calendar date with year, month and day.", "FORMAT")
        if day is not None and day.year != year:
            violations.add(f"{path}.date", f"Must be a day of {year}.", "OUT_OF_RANGE")
        elif day is not None and day in days:
            violations.add(f"{path}.date", "Listed twice; give each day once.", "DUPLICATE")
        elif day is not None:
            days[day] = holiday.name.strip()
        violations.check(
            0 < len(holiday.name.strip()) <= MAX_HOLIDAY_NAME,
            f"{path}.name",
            f"Required: the holiday's name, at most {MAX_HOLIDAY_NAME} characters.",
            "REQUIRED",
        )
    return days


def check_season_year(violations: Violations, year: int, field: str = "season_year") -> None:
    violations.check(2000 <= year <= 2100, field, "Must be a year from 2000 to 2100.", "OUT_OF_RANGE")
