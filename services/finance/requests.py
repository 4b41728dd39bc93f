"""Requests read into the domain's types, every bad field collected in one Violations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date
from typing import Literal

from asan.finance.v1 import finance_pb2, finance_service_pb2
from services.finance.catalogue import SCOPES
from services.finance.consents import Frequency, Kind, Terms
from services.runtime import protos
from services.runtime.enums import stored_name
from services.runtime.identifiers import is_fin
from services.runtime.validation import Violations, check_request_id

MAX_ID_LENGTH = 36


def check_consent_id(violations: Violations, consent_id: str) -> None:
    if not consent_id:
        violations.add("consent_id", "Required: the consent_id CreateConsent answered.", "REQUIRED")
    elif len(consent_id) > MAX_ID_LENGTH:
        violations.add("consent_id", "Not a consent_id: pass the one CreateConsent answered.", "FORMAT")


def _scopes(violations: Violations, values: list[int], field: str, *, required: bool) -> tuple[str, ...]:
    names: list[str] = []
    for index, value in enumerate(values):
        name = stored_name(finance_pb2.Scope, value, "SCOPE_", violations, f"{field}[{index}]")
        if value == 0:
            violations.add(f"{field}[{index}]", "Must be a scope, not unspecified.", "REQUIRED")
        elif name is not None and name in SCOPES:
            names.append(name)
    if required and not values:
        violations.add(field, "Required: at least one scope.", "REQUIRED")
    if len(set(names)) != len(names):
        violations.add(field, "Each scope at most once.", "DUPLICATE")
    return tuple(names)


def _day(
    violations: Violations,
    period: finance_pb2.DatePeriod,
    name: Literal["start_date", "end_date"],
    field: str,
) -> date | None:
    if not period.HasField(name):
        violations.add(f"{field}.{name}", "Required: a whole calendar date.", "REQUIRED")
        return None
    try:
        return protos.to_date(getattr(period, name))
    except ValueError:
        violations.add(f"{field}.{name}", "Must be a whole calendar date.", "FORMAT")
        return None


def date_period(
    violations: Violations, period: finance_pb2.DatePeriod, field: str
) -> tuple[date, date] | None:
    """Both days of a period, each checked, so that a client learns of both at once."""
    start = _day(violations, period, "start_date", field)
    end = _day(violations, period, "end_date", field)
    if start is None or end is None:
        return None
    return start, end


def new_consent(request: finance_service_pb2.CreateConsentRequest, violations: Violations) -> Terms | None:
    """The terms a bank asks for; None when a field is missing or malformed (then in `violations`)."""
    check_request_id(violations, request.request_id)
    if not request.HasField("consent"):
        violations.add("consent", "Required: the consent asked for.", "REQUIRED")
        return None
    consent = request.consent
    if not consent.fin:
        violations.add("consent.fin", "Required: the citizen's FIN.", "REQUIRED")
    else:
        violations.check(
            is_fin(consent.fin), "consent.fin", "Must be a FIN: 7 digits or capital letters.", "FORMAT"
        )
    purpose = stored_name(finance_pb2.Purpose, consent.purpose, "PURPOSE_", violations, "consent.purpose")
    violations.check(consent.purpose != 0, "consent.purpose", "Required: why the bank asks.", "REQUIRED")
    scopes = _scopes(violations, list(consent.scopes), "consent.scopes", required=True)
    period = None
    if violations.check(
        consent.HasField("data_period"),
        "consent.data_period",
        "Required: the days the data may come from.",
        "REQUIRED",
    ):
        period = date_period(violations, consent.data_period, "consent.data_period")
    kind = stored_name(finance_pb2.ConsentKind, consent.kind, "CONSENT_KIND_", violations, "consent.kind")
    violations.check(consent.kind != 0, "consent.kind", "Required: ONE_TIME or PERIODIC.", "REQUIRED")
    frequency = stored_name(
        finance_pb2.FetchFrequency, consent.frequency, "FETCH_FREQUENCY_", violations, "consent.frequency"
    )
    violations.check(
        consent.HasField("expire_time"), "consent.expire_time", "Required: when the consent ends.", "REQUIRED"
    )
    if violations or purpose is None or kind is None or period is None:
        return None
    return Terms(
        fin=consent.fin,
        purpose=purpose,
        scopes=scopes,
        period_start=period[0],
        period_end=period[1],
        kind=Kind(kind),
        frequency=Frequency(frequency) if frequency else None,
        expire_at=consent.expire_time.ToDatetime(tzinfo=UTC),
    )


@dataclass(frozen=True)
class FetchWanted:
    """What a fetch asks for; None means "all the consent covers"."""

    consent_id: str
    scopes: tuple[str, ...] | None
    period: tuple[date, date] | None


def fetch_wanted(request: finance_service_pb2.FetchDataRequest, violations: Violations) -> FetchWanted:
    check_request_id(violations, request.request_id)
    check_consent_id(violations, request.consent_id)
    scopes = _scopes(violations, list(request.scopes), "scopes", required=False)
    period = (
        date_period(violations, request.data_period, "data_period")
        if request.HasField("data_period")
        else None
    )
    if period and period[0] > period[1]:
        violations.add("data_period", "The start date must not be after the end date.")
    return FetchWanted(request.consent_id, scopes or None, period)


def consent_change(request_id: str, consent_id: str, violations: Violations) -> None:
    check_request_id(violations, request_id)
    check_consent_id(violations, consent_id)


def status_filter(value: int, violations: Violations) -> str | None:
    return stored_name(finance_pb2.ConsentStatus, value, "CONSENT_STATUS_", violations, "status")
