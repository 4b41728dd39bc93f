"""Domain values and rows to API messages."""

from __future__ import annotations

from collections.abc import Sequence

from asan.agro.v1 import agro_pb2
from asan.common.v1 import money_pb2
from services.agro import subsidy as rules
from services.agro.accounts import masked_iban
from services.agro.payout_legs import awaits_officer
from services.agro.queries import Aggregate
from services.agro.tables import DeclarationDraftRow, DeclarationRow, FarmerRow, ParcelRow, PayoutLegRow
from services.agro.windows import Window
from services.runtime.enums import proto_value
from services.runtime.holidays import Holiday
from services.runtime.protos import proto_date, timestamp

AZN = "AZN"


def money(qepik: int) -> money_pb2.Money:
    return money_pb2.Money(minor_units=qepik, currency_code=AZN)


def farmer(row: FarmerRow) -> agro_pb2.Farmer:
    return agro_pb2.Farmer(
        fin=row.fin,
        kind=proto_value(agro_pb2.FarmerKind, "FARMER_KIND_", row.kind),
        display_name=row.display_name,
        cooperative_voen=row.cooperative_voen or "",
        member_count=row.member_count,
        iban=row.iban,
        input_card_reference=row.input_card_reference,
        register_time=timestamp(row.registered_at),
    )


def parcel(row: ParcelRow) -> agro_pb2.Parcel:
    return agro_pb2.Parcel(
        parcel_id=row.id,
        farmer_fin=row.farmer_fin,
        registry_number=row.registry_number,
        land_document=row.land_document,
        district=row.district,
        contour_geojson=row.contour_geojson,
        area_square_metres=row.area_m2,
        eligible_area_square_metres=row.eligible_m2,
    )


def subsidy(value: rules.Subsidy) -> agro_pb2.Subsidy:
    split = value.split
    return agro_pb2.Subsidy(
        base_per_hectare=money(rules.BASE_PER_HECTARE_QEPIK),
        coefficient_condition=value.condition.value if value.condition else "",
        paid_area_square_metres=value.paid_area_square_metres,
        tiers=[
            agro_pb2.SubsidyTierPart(
                area_square_metres=part.area_square_metres,
                coefficient_hundredths=part.hundredths,
                amount=money(part.amount_qepik),
            )
            for part in value.tiers
        ],
        cooperative_bonus=money(value.cooperative_bonus_qepik),
        monitoring_cut_percent=value.monitoring_cut_percent,
        total=money(value.total_qepik),
        per_tonne=value.per_tonne,
        note=value.note,
        cash_part=money(split.cash_qepik),
        card_part=money(split.card_qepik),
    )


# Cash first, as the subsidy shows its parts.
_LEG_ORDER = {"CASH": 0, "CARD": 1}


def payout_leg(row: PayoutLegRow, *, awaits_officer: bool) -> agro_pb2.PayoutLeg:
    account = row.destination_account or ""
    return agro_pb2.PayoutLeg(
        leg=proto_value(agro_pb2.PayoutLegKind, "PAYOUT_LEG_KIND_", row.leg),
        amount=money(row.amount_qepik),
        status=proto_value(agro_pb2.PayoutLegStatus, "PAYOUT_LEG_STATUS_", row.status),
        attempt=row.attempt,
        failure_reason=row.failure_reason or "",
        retryable=row.retryable,
        awaits_officer=awaits_officer,
        # The card's reference is the bank's, not the card number: shown as stored.
        masked_destination=masked_iban(account) if row.leg == "CASH" and account else account,
        paid_time=timestamp(row.paid_at),
        reissue_count=row.reissue,
        payout_id=row.payout_id or "",
    )


def payout_legs(rows: Sequence[PayoutLegRow], max_attempts: int) -> list[agro_pb2.PayoutLeg]:
    """A declaration's legs, cash first; `max_attempts` tells which await the officer."""
    return [
        payout_leg(row, awaits_officer=awaits_officer(row, max_attempts))
        for row in sorted(rows, key=lambda row: _LEG_ORDER.get(row.leg, 2))
    ]


def declaration(row: DeclarationRow, legs: Sequence[agro_pb2.PayoutLeg] = ()) -> agro_pb2.Declaration:
    return agro_pb2.Declaration(
        declaration_number=row.number,
        farmer_fin=row.farmer_fin,
        parcel_id=row.parcel_id,
        district=row.district,
        crop=proto_value(agro_pb2.Crop, "CROP_", row.crop),
        season_year=row.season_year,
        campaign=proto_value(agro_pb2.Campaign, "CAMPAIGN_", row.campaign),
        contour_geojson=row.contour_geojson,
        area_square_metres=row.area_m2,
        modern_irrigation=row.modern_irrigation,
        analysis_reference=row.analysis_reference,
        insurance_reference=row.insurance_reference,
        status=proto_value(agro_pb2.DeclarationStatus, "DECLARATION_STATUS_", row.status),
        subsidy=agro_pb2.Subsidy.FromString(row.subsidy),
        monitored_area_square_metres=row.monitored_m2 or 0,
        rejection_reason=row.rejection_reason or "",
        declare_time=timestamp(row.declared_at),
        payout_legs=legs,
    )


def draft(row: DeclarationDraftRow) -> agro_pb2.Declaration:
    return agro_pb2.Declaration(
        parcel_id=row.parcel_id,
        crop=proto_value(agro_pb2.Crop, "CROP_", row.crop),
        season_year=row.season_year,
        campaign=proto_value(agro_pb2.Campaign, "CAMPAIGN_", row.campaign),
        contour_geojson=row.contour_geojson,
        modern_irrigation=row.modern_irrigation,
        analysis_reference=row.analysis_reference,
        insurance_reference=row.insurance_reference,
    )


def coefficient_table(
    season_year: int, version: int, rows: list[rules.Coefficient]
) -> agro_pb2.CoefficientTable:
    return agro_pb2.CoefficientTable(
        season_year=season_year,
        version=version,
        base_per_hectare=money(rules.BASE_PER_HECTARE_QEPIK),
        coefficients=[
            agro_pb2.Coefficient(
                crop=proto_value(agro_pb2.Crop, "CROP_", row.crop.value),
                condition=row.condition.value,
                tiers=[
                    agro_pb2.CoefficientTier(
                        from_hectares=t.from_hectares, coefficient_hundredths=t.hundredths
                    )
                    for t in row.tiers
                ],
                per_tonne=row.per_tonne,
            )
            for row in rows
        ],
    )


def window(value: Window) -> agro_pb2.SowingWindow:
    return agro_pb2.SowingWindow(
        campaign=proto_value(agro_pb2.Campaign, "CAMPAIGN_", value.campaign.value),
        season_year=value.season_year,
        first_day=proto_date(value.first_day),
        last_day=proto_date(value.last_day),
    )


def holiday_calendar(year: int, holidays: Sequence[Holiday]) -> agro_pb2.HolidayCalendar:
    return agro_pb2.HolidayCalendar(
        year=year, holidays=[agro_pb2.Holiday(date=proto_date(h.day), name=h.name) for h in holidays]
    )


def aggregate(value: Aggregate) -> agro_pb2.SeasonAggregate:
    return agro_pb2.SeasonAggregate(
        district=value.district,
        crop=proto_value(agro_pb2.Crop, "CROP_", value.crop),
        campaign=proto_value(agro_pb2.Campaign, "CAMPAIGN_", value.campaign),
        declaration_count=value.count,
        declared_area_square_metres=value.area_m2,
        approved_subsidies=money(value.approved_qepik),
    )
