"""The AgroService over real gRPC on SQLite and PostgreSQL: farmers, parcels, declarations
checked at declaration time, the quote, officers' review and what each caller may see."""

from __future__ import annotations

import asyncio
from datetime import date

import grpc
import pytest
from google.type import date_pb2
from sqlalchemy import func, select

from asan.agro.v1 import agro_pb2, agro_service_pb2, events_pb2
from services.agro.tables import DeclarationRow, PayoutLegRow
from tests.agro.builders import (
    DISTRICT,
    FARMER_FIN,
    IBAN,
    LAT,
    LON,
    NEIGHBOUR_FIN,
    admin_auth,
    agro_service,
    declaration,
    declare,
    district_officer,
    farmer,
    farmer_auth,
    in_database,
    mapped_parcel,
    ministry_officer,
    new_request_id,
    outbox_events,
    register,
    rejected,
    square,
    stub,
)
from tests.support.servers import RunningService
from tests.support.waiting import eventually

HA = 10_000


# --- Farmers -----------------------------------------------------------------------------------


async def test_a_citizen_registers_as_a_farmer_once_per_request_id(agro: RunningService) -> None:
    request = agro_service_pb2.RegisterFarmerRequest(request_id=new_request_id(), farmer=farmer())
    first = await stub(agro).RegisterFarmer(request, metadata=farmer_auth())
    again = await stub(agro).RegisterFarmer(request, metadata=farmer_auth())

    assert first == again and first.fin == FARMER_FIN and first.iban == IBAN
    assert [e.fin for e in outbox_events(agro, events_pb2.FarmerRegistered)] == [FARMER_FIN]


async def test_an_iban_with_wrong_check_digits_is_refused_on_its_field(agro: RunningService) -> None:
    request = agro_service_pb2.RegisterFarmerRequest(
        request_id=new_request_id(), farmer=farmer(iban="AZ22NABZ00000000137010001944")
    )
    rejection = await rejected(stub(agro).RegisterFarmer(request, metadata=farmer_auth()))

    assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT
    assert rejection.violations == {"farmer.iban": "FORMAT"}


async def test_a_cooperative_needs_its_voen_and_members(agro: RunningService) -> None:
    body = farmer(agro_pb2.FARMER_KIND_COOPERATIVE, cooperative_voen="", member_count=1)
    request = agro_service_pb2.RegisterFarmerRequest(request_id=new_request_id(), farmer=body)
    rejection = await rejected(stub(agro).RegisterFarmer(request, metadata=farmer_auth()))

    assert set(rejection.violated_fields) == {"farmer.cooperative_voen", "farmer.member_count"}


async def test_fields_left_empty_are_required_before_the_caller_is_even_considered(
    agro: RunningService,
) -> None:
    """An empty field is missing, not badly formed; and an officer, who may not register, still
    learns first what the request lacks (validate, then authorise)."""
    request = agro_service_pb2.RegisterFarmerRequest(
        request_id=new_request_id(), farmer=agro_pb2.Farmer(display_name="Əli Məmmədov")
    )
    rejection = await rejected(stub(agro).RegisterFarmer(request, metadata=ministry_officer()))

    assert rejection.violations == {
        "farmer.kind": "REQUIRED",
        "farmer.iban": "REQUIRED",
        "farmer.input_card_reference": "REQUIRED",
    }


async def test_an_officer_looks_a_farmer_up_by_fin_and_a_bad_fin_is_named(agro: RunningService) -> None:
    registered = await register(agro)
    found = await stub(agro).GetFarmer(
        agro_service_pb2.GetFarmerRequest(fin=FARMER_FIN), metadata=ministry_officer()
    )
    bad = await rejected(
        stub(agro).GetFarmer(agro_service_pb2.GetFarmerRequest(fin="not a fin"), metadata=ministry_officer())
    )

    assert found == registered
    assert bad.violations == {"fin": "FORMAT"}


# --- Parcels -----------------------------------------------------------------------------------


async def test_a_parcel_gets_its_geodesic_area_and_no_eligible_area_until_an_officer_sets_it(
    agro: RunningService,
) -> None:
    await register(agro)
    parcel = await stub(agro).CreateParcel(
        agro_service_pb2.CreateParcelRequest(
            request_id=new_request_id(),
            parcel=agro_pb2.Parcel(
                registry_number="SAA-0001",
                land_document="TK-1",
                district=DISTRICT,
                contour_geojson=square(LON, LAT, 0.01),
            ),
        ),
        metadata=farmer_auth(),
    )
    assert 945_000 < parcel.area_square_metres < 955_000
    assert parcel.eligible_area_square_metres == 0

    body = declaration(parcel, square(LON + 0.001, LAT + 0.001, 0.002))
    rejection = await rejected(declare(agro, body))
    assert (rejection.code, rejection.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ELIGIBLE_AREA_NOT_SET",
    )


@pytest.mark.parametrize(
    ("contour", "said"),
    [
        (
            '{"type": "Polygon", "coordinates": '
            "[[[48.3, 39.9], [48.31, 39.91], [48.31, 39.9], [48.3, 39.91], [48.3, 39.9]]]}",
            "Self-intersection",
        ),
        (square(13.40, 52.50, 0.01), "outside Azerbaijan"),
        (square(LON, LAT, 0.00005), "minimum"),
    ],
)
async def test_invalid_geometry_is_invalid_argument_with_the_reason(
    agro: RunningService, contour: str, said: str
) -> None:
    await register(agro)
    request = agro_service_pb2.CreateParcelRequest(
        request_id=new_request_id(),
        parcel=agro_pb2.Parcel(
            registry_number="SAA-0002", land_document="TK-1", district=DISTRICT, contour_geojson=contour
        ),
    )
    rejection = await rejected(stub(agro).CreateParcel(request, metadata=farmer_auth()))

    assert rejection.violations == {"parcel.contour_geojson": "INVALID_GEOMETRY"}
    assert said in rejection.field_violations[0].description


async def test_only_the_parcels_district_sets_its_eligible_area(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    request = agro_service_pb2.SetEligibleAreaRequest(
        request_id=new_request_id(), parcel_id=parcel.parcel_id, eligible_area_square_metres=10 * HA
    )
    rejection = await rejected(stub(agro).SetEligibleArea(request, metadata=district_officer("SABIRABAD")))
    assert (rejection.code, rejection.reason) == (grpc.StatusCode.NOT_FOUND, "PARCEL_NOT_FOUND")

    farmer_tries = await rejected(stub(agro).SetEligibleArea(request, metadata=farmer_auth()))
    assert farmer_tries.code == grpc.StatusCode.PERMISSION_DENIED


# --- Declarations ------------------------------------------------------------------------------


async def test_a_declaration_shows_its_subsidy_and_the_same_request_id_makes_one(
    agro: RunningService,
) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    body = declaration(parcel, square(LON + 0.001, LAT + 0.001, 0.003))
    request_id = new_request_id()

    first = await declare(agro, body, request_id=request_id)
    again = await declare(agro, body, request_id=request_id)

    assert first == again
    assert first.declaration_number.startswith("AGR-2026-")
    assert (first.season_year, first.campaign) == (2026, agro_pb2.CAMPAIGN_AUTUMN)
    subsidy = first.subsidy
    assert [t.coefficient_hundredths for t in subsidy.tiers] == [80]  # barley 0.8
    assert subsidy.cash_part.minor_units + subsidy.card_part.minor_units == subsidy.total.minor_units > 0
    count = in_database(agro, lambda s: s.scalar(select(func.count()).select_from(DeclarationRow)))
    assert count == 1
    submitted = outbox_events(agro, events_pb2.DeclarationSubmitted)
    assert [e.declaration_number for e in submitted] == [first.declaration_number]


async def test_sown_area_must_fit_what_is_left_of_the_eligible_area(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro, eligible=12 * HA)
    await declare(agro, declaration(parcel, square(LON, LAT, 0.003)))  # about 8.5 ha

    rejection = await rejected(declare(agro, declaration(parcel, square(LON + 0.005, LAT + 0.005, 0.003))))

    assert (rejection.code, rejection.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "AREA_EXCEEDS_ELIGIBLE",
    )
    assert 30_000 < int(rejection.error_info.metadata["remaining_square_metres"]) < 40_000


async def test_overlap_with_anyones_declaration_names_its_number_not_its_owner(agro: RunningService) -> None:
    await register(agro)
    await register(agro, NEIGHBOUR_FIN)
    mine = await mapped_parcel(agro, contour=square(LON, LAT, 0.01))
    # The neighbour's parcel record overlaps mine: the land registry's quarrel, not ours;
    # what is refused is sowing the same ground twice.
    theirs = await mapped_parcel(agro, NEIGHBOUR_FIN, contour=square(LON + 0.005, LAT, 0.01))
    first = await declare(agro, declaration(mine, square(LON + 0.004, LAT, 0.004)))

    rejection = await rejected(
        declare(agro, declaration(theirs, square(LON + 0.006, LAT, 0.004)), NEIGHBOUR_FIN)
    )

    assert (rejection.code, rejection.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DECLARATION_OVERLAP")
    assert rejection.error_info.metadata["declaration_number"] == first.declaration_number
    assert FARMER_FIN not in rejection.readable_text()
    assert "asan_agro_overlap_conflicts_total 1.0" in agro.metrics_text()


async def test_touching_declarations_are_not_overlaps(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    await declare(agro, declaration(parcel, square(LON, LAT, 0.003)))

    beside = await declare(agro, declaration(parcel, square(LON + 0.003, LAT, 0.003)))

    assert beside.status == agro_pb2.DECLARATION_STATUS_SUBMITTED


async def test_a_contour_outside_its_parcel_is_refused_on_its_field(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    rejection = await rejected(declare(agro, declaration(parcel, square(LON + 0.008, LAT, 0.004))))

    assert rejection.violations == {"declaration.contour_geojson": "OUTSIDE_PARCEL"}


async def test_missing_analysis_and_insurance_are_named(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    body = declaration(
        parcel, square(LON, LAT, 0.004), agro_pb2.CROP_WHEAT, analysis_reference="", insurance_reference=""
    )
    rejection = await rejected(declare(agro, body))

    assert rejection.violations == {
        "declaration.analysis_reference": "CONDITION_MISSING",
        "declaration.insurance_reference": "CONDITION_MISSING",
    }


async def test_outside_a_window_the_refusal_gives_the_next_windows_dates(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with agro_service(database_url, monkeypatch, today=date(2027, 1, 15)) as agro:
        await register(agro)
        parcel = await mapped_parcel(agro)
        rejection = await rejected(declare(agro, declaration(parcel, square(LON, LAT, 0.002))))

    assert (rejection.code, rejection.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "OUTSIDE_SOWING_WINDOW",
    )
    assert rejection.error_info.metadata["next_first_day"] == "2027-02-01"
    assert rejection.error_info.metadata["next_last_day"] == "2027-05-31"


# --- Quote -------------------------------------------------------------------------------------


async def test_quote_shows_wheats_tiers_and_saves_nothing(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    body = declaration(parcel, square(LON, LAT, 0.006), agro_pb2.CROP_WHEAT)  # about 34 ha
    quote = await stub(agro).QuoteSubsidy(
        agro_service_pb2.QuoteSubsidyRequest(request_id=new_request_id(), declaration=body),
        metadata=farmer_auth(),
    )

    first, above = quote.tiers
    assert (first.area_square_metres, first.coefficient_hundredths) == (20 * HA, 100)
    assert above.coefficient_hundredths == 80
    assert quote.base_per_hectare.minor_units == 200_00
    assert in_database(agro, lambda s: s.scalar(select(func.count()).select_from(DeclarationRow))) == 0


async def test_quote_for_cotton_says_it_is_paid_per_tonne(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    body = declaration(parcel, square(LON, LAT, 0.004), agro_pb2.CROP_COTTON)
    quote = await stub(agro).QuoteSubsidy(
        agro_service_pb2.QuoteSubsidyRequest(request_id=new_request_id(), declaration=body),
        metadata=farmer_auth(),
    )

    assert quote.per_tonne and quote.total.minor_units == 0
    assert "per tonne" in quote.note


async def test_cooperative_over_50_ha_gets_its_bonus_in_the_quote(agro: RunningService) -> None:
    await register(agro, kind=agro_pb2.FARMER_KIND_COOPERATIVE)
    parcel = await mapped_parcel(agro)
    body = declaration(parcel, square(LON, LAT, 0.009), agro_pb2.CROP_RICE)  # about 77 ha
    quote = await stub(agro).QuoteSubsidy(
        agro_service_pb2.QuoteSubsidyRequest(request_id=new_request_id(), declaration=body),
        metadata=farmer_auth(),
    )

    base = sum(t.amount.minor_units for t in quote.tiers)
    assert quote.cooperative_bonus.minor_units == round(base / 10)


# --- Review ------------------------------------------------------------------------------------


async def test_approval_fixes_the_subsidy_and_records_two_pending_legs(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    declared = await declare(agro, declaration(parcel, square(LON, LAT, 0.004)))
    officer = district_officer()
    number = declared.declaration_number

    premature = await rejected(
        stub(agro).ApproveDeclaration(
            agro_service_pb2.ApproveDeclarationRequest(
                request_id=new_request_id(), declaration_number=number
            ),
            metadata=officer,
        )
    )
    assert premature.reason == "NOT_MONITORED"

    monitored = await stub(agro).RecordMonitoring(
        agro_service_pb2.RecordMonitoringRequest(
            request_id=new_request_id(),
            declaration_number=number,
            monitored_area_square_metres=round(declared.area_square_metres * 0.9),
        ),
        metadata=officer,
    )
    assert monitored.subsidy.monitoring_cut_percent == 30
    approved = await stub(agro).ApproveDeclaration(
        agro_service_pb2.ApproveDeclarationRequest(request_id=new_request_id(), declaration_number=number),
        metadata=officer,
    )

    assert approved.status == agro_pb2.DECLARATION_STATUS_APPROVED
    legs = in_database(
        agro, lambda s: {(r.leg, r.amount_qepik, r.status) for r in s.scalars(select(PayoutLegRow))}
    )
    total = approved.subsidy.total.minor_units
    assert legs == {
        ("CASH", approved.subsidy.cash_part.minor_units, "PENDING"),
        ("CARD", approved.subsidy.card_part.minor_units, "PENDING"),
    }
    assert sum(amount for _, amount, _ in legs) == total
    [event] = outbox_events(agro, events_pb2.SubsidyApproved)
    assert event.total.minor_units == total
    assert 'asan_agro_payout_legs_pending{leg="CASH"} 1.0' in agro.metrics_text()


async def test_over_half_less_monitored_bans_the_next_season(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with agro_service(database_url, monkeypatch) as agro:
        await register(agro)
        parcel = await mapped_parcel(agro)
        declared = await declare(agro, declaration(parcel, square(LON, LAT, 0.004)))
        monitored = await stub(agro).RecordMonitoring(
            agro_service_pb2.RecordMonitoringRequest(
                request_id=new_request_id(),
                declaration_number=declared.declaration_number,
                monitored_area_square_metres=declared.area_square_metres // 2 - 1,
            ),
            metadata=district_officer(),
        )
        assert monitored.subsidy.total.minor_units == 0 and "next season" in monitored.subsidy.note
    async with agro_service(database_url, monkeypatch, today=date(2027, 3, 1)) as agro:
        rejection = await rejected(declare(agro, declaration(parcel, square(LON, LAT, 0.004))))

    assert (rejection.reason, rejection.error_info.metadata["declaration_number"]) == (
        "DECLARATIONS_BANNED",
        declared.declaration_number,
    )


async def test_a_rejected_declaration_frees_its_ground(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    body = declaration(parcel, square(LON, LAT, 0.004))
    first = await declare(agro, body)
    await stub(agro).RejectDeclaration(
        agro_service_pb2.RejectDeclarationRequest(
            request_id=new_request_id(),
            declaration_number=first.declaration_number,
            reason="Not sown at the check.",
        ),
        metadata=district_officer(),
    )

    again = await declare(agro, body)

    assert again.declaration_number != first.declaration_number


# --- Who sees what -----------------------------------------------------------------------------


async def test_others_declarations_are_not_found_and_officers_see_their_district(
    agro: RunningService,
) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    declared = await declare(agro, declaration(parcel, square(LON, LAT, 0.004)))
    get = agro_service_pb2.GetDeclarationRequest(declaration_number=declared.declaration_number)

    stranger = await rejected(stub(agro).GetDeclaration(get, metadata=farmer_auth(NEIGHBOUR_FIN)))
    elsewhere = await rejected(stub(agro).GetDeclaration(get, metadata=district_officer("SABIRABAD")))
    assert stranger.reason == elsewhere.reason == "DECLARATION_NOT_FOUND"
    assert (await stub(agro).GetDeclaration(get, metadata=district_officer())) == declared
    assert (await stub(agro).GetDeclaration(get, metadata=ministry_officer())) == declared

    queue = await stub(agro).ListDeclarations(
        agro_service_pb2.ListDeclarationsRequest(status=agro_pb2.DECLARATION_STATUS_SUBMITTED),
        metadata=district_officer(),
    )
    other_queue = await stub(agro).ListDeclarations(
        agro_service_pb2.ListDeclarationsRequest(), metadata=district_officer("SABIRABAD")
    )
    own = await stub(agro).ListDeclarations(
        agro_service_pb2.ListDeclarationsRequest(), metadata=farmer_auth()
    )
    theirs = await stub(agro).ListDeclarations(
        agro_service_pb2.ListDeclarationsRequest(), metadata=farmer_auth(NEIGHBOUR_FIN)
    )
    assert [d.declaration_number for d in queue.declarations] == [declared.declaration_number]
    assert list(other_queue.declarations) == [] and list(theirs.declarations) == []
    assert [d.declaration_number for d in own.declarations] == [declared.declaration_number]


async def test_public_aggregates_and_tables_need_no_token_and_carry_no_personal_data(
    agro: RunningService,
) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    declared = await declare(agro, declaration(parcel, square(LON, LAT, 0.004)))

    page = await stub(agro).ListSeasonAggregates(
        agro_service_pb2.ListSeasonAggregatesRequest(season_year=2026)
    )
    table = await stub(agro).GetCoefficientTable(
        agro_service_pb2.GetCoefficientTableRequest(season_year=2026)
    )
    window = await stub(agro).GetSowingWindow(agro_service_pb2.GetSowingWindowRequest())

    [row] = page.aggregates
    assert (row.district, row.crop, row.declaration_count) == (DISTRICT, agro_pb2.CROP_BARLEY, 1)
    assert row.declared_area_square_metres == declared.area_square_metres
    assert FARMER_FIN not in str(page) and parcel.parcel_id not in str(page)
    rice = {
        c.condition: c.tiers[0].coefficient_hundredths
        for c in table.coefficients
        if c.crop == agro_pb2.CROP_RICE
    }
    assert rice == {"MAIN_SOWING": 190, "REPEAT_SOWING": 60}
    assert (window.campaign, window.last_day.month, window.last_day.day) == (agro_pb2.CAMPAIGN_AUTUMN, 12, 30)


async def test_the_open_window_is_announced_once(agro: RunningService) -> None:
    await eventually(
        lambda: len(outbox_events(agro, events_pb2.DeclarationWindowOpened)) == 1,
        within=5,
        what="the announcement",
    )
    [opened] = outbox_events(agro, events_pb2.DeclarationWindowOpened)
    assert (opened.season_year, opened.campaign) == (2026, agro_pb2.CAMPAIGN_AUTUMN)


async def test_two_overlapping_declarations_made_at_once_are_one_accepted_one_refused(
    agro: RunningService,
) -> None:
    await register(agro)
    await register(agro, NEIGHBOUR_FIN)
    mine = await mapped_parcel(agro, contour=square(LON, LAT, 0.01))
    theirs = await mapped_parcel(agro, NEIGHBOUR_FIN, contour=square(LON + 0.005, LAT, 0.01))

    outcomes = await asyncio.gather(
        declare(agro, declaration(mine, square(LON + 0.004, LAT, 0.004))),
        declare(agro, declaration(theirs, square(LON + 0.006, LAT, 0.004)), NEIGHBOUR_FIN),
        return_exceptions=True,
    )

    accepted = [o for o in outcomes if isinstance(o, agro_pb2.Declaration)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(accepted) == 1 and len(refused) == 1, outcomes
    assert (await rejected(_raise(refused[0]))).reason == "DECLARATION_OVERLAP"
    metrics = agro.metrics_text()
    assert 'asan_agro_declarations_total{crop="BARLEY",season="2026-AUTUMN"} 1.0' in metrics


async def _raise(error: BaseException) -> None:
    raise error


async def test_an_admin_replaces_a_seasons_coefficients_with_a_new_version(agro: RunningService) -> None:
    table = agro_pb2.CoefficientTable(
        season_year=2027,
        coefficients=[
            agro_pb2.Coefficient(
                crop=agro_pb2.CROP_WHEAT,
                condition="ANY",
                tiers=[
                    agro_pb2.CoefficientTier(from_hectares=0, coefficient_hundredths=110),
                    agro_pb2.CoefficientTier(from_hectares=30, coefficient_hundredths=90),
                ],
            ),
            agro_pb2.Coefficient(crop=agro_pb2.CROP_COTTON, condition="ANY", per_tonne=True),
        ],
    )
    request = agro_service_pb2.UpdateCoefficientTableRequest(request_id=new_request_id(), table=table)
    admin = admin_auth()

    saved = await stub(agro).UpdateCoefficientTable(request, metadata=admin)
    read = await stub(agro).GetCoefficientTable(agro_service_pb2.GetCoefficientTableRequest(season_year=2027))

    assert saved == read and saved.version == 2
    assert [(c.crop, [t.coefficient_hundredths for t in c.tiers]) for c in read.coefficients] == [
        (agro_pb2.CROP_COTTON, []),
        (agro_pb2.CROP_WHEAT, [110, 90]),
    ]
    officer_tries = await rejected(stub(agro).UpdateCoefficientTable(request, metadata=ministry_officer()))
    assert officer_tries.reason == "ADMIN_ONLY"


async def test_a_coefficient_table_with_bad_tiers_names_each_row(agro: RunningService) -> None:
    table = agro_pb2.CoefficientTable(
        season_year=2027,
        coefficients=[
            agro_pb2.Coefficient(
                crop=agro_pb2.CROP_WHEAT, condition="ANY", tiers=[agro_pb2.CoefficientTier(from_hectares=5)]
            ),
            agro_pb2.Coefficient(crop=agro_pb2.CROP_RICE, condition="SOMETIMES", tiers=[]),
        ],
    )
    request = agro_service_pb2.UpdateCoefficientTableRequest(request_id=new_request_id(), table=table)
    rejection = await rejected(stub(agro).UpdateCoefficientTable(request, metadata=admin_auth()))

    assert rejection.violations == {
        "table.coefficients[0].tiers": "TIERS",
        "table.coefficients[1].condition": "OUT_OF_RANGE",
        "table.coefficients[1].tiers": "TIERS",
    }


async def test_an_update_mask_changes_the_rows_only_and_names_no_other_field(agro: RunningService) -> None:
    row = agro_pb2.Coefficient(
        crop=agro_pb2.CROP_WHEAT,
        condition="ANY",
        tiers=[agro_pb2.CoefficientTier(coefficient_hundredths=100)],
    )
    table = agro_pb2.CoefficientTable(season_year=2027, coefficients=[row])

    def update(*paths: str) -> agro_service_pb2.UpdateCoefficientTableRequest:
        request = agro_service_pb2.UpdateCoefficientTableRequest(request_id=new_request_id(), table=table)
        request.update_mask.paths.extend(paths)
        return request

    saved = await stub(agro).UpdateCoefficientTable(update("coefficients"), metadata=admin_auth())
    unknown = await rejected(stub(agro).UpdateCoefficientTable(update("rows"), metadata=admin_auth()))
    nothing = await rejected(stub(agro).UpdateCoefficientTable(update("season_year"), metadata=admin_auth()))

    assert [c.crop for c in saved.coefficients] == [agro_pb2.CROP_WHEAT]
    assert unknown.violations == {"update_mask": "UNKNOWN_FIELD"}
    assert nothing.violations == {"update_mask": "NOTHING_TO_CHANGE"}


async def test_a_holiday_without_its_day_or_name_names_each_as_required(agro: RunningService) -> None:
    calendar = agro_pb2.HolidayCalendar(year=2026, holidays=[agro_pb2.Holiday()])
    request = agro_service_pb2.UpdateHolidayCalendarRequest(request_id=new_request_id(), calendar=calendar)
    request.update_mask.paths.append("holidays")
    rejection = await rejected(stub(agro).UpdateHolidayCalendar(request, metadata=admin_auth()))

    assert rejection.violations == {
        "calendar.holidays[0].date": "REQUIRED",
        "calendar.holidays[0].name": "REQUIRED",
    }


async def test_when_the_window_opens_last_years_declarers_get_drafts_to_confirm(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    last_autumn = date(2026, 10, 15)
    async with agro_service(database_url, monkeypatch, today=last_autumn) as agro:
        await register(agro)
        parcel = await mapped_parcel(agro)
        sown = await declare(agro, declaration(parcel, square(LON, LAT, 0.004), agro_pb2.CROP_WHEAT))
    async with agro_service(database_url, monkeypatch, today=date(2027, 9, 1)) as agro:
        await eventually(
            lambda: len(outbox_events(agro, events_pb2.DeclarationDraftsPrepared)) == 1,
            within=5,
            what="the drafts prepared",
        )
        [prepared] = outbox_events(agro, events_pb2.DeclarationDraftsPrepared)
        page = await stub(agro).ListDeclarationDrafts(
            agro_service_pb2.ListDeclarationDraftsRequest(), metadata=farmer_auth()
        )
        [draft] = page.drafts
        confirmed = await declare(agro, draft)
        none_for_others = await stub(agro).ListDeclarationDrafts(
            agro_service_pb2.ListDeclarationDraftsRequest(), metadata=farmer_auth(NEIGHBOUR_FIN)
        )

    assert (prepared.farmer_fin, prepared.season_year, prepared.draft_count) == (FARMER_FIN, 2027, 1)
    assert (prepared.last_day.month, prepared.last_day.day) == (12, 30)
    assert (draft.crop, draft.contour_geojson, draft.season_year) == (
        agro_pb2.CROP_WHEAT,
        sown.contour_geojson,
        2027,
    )
    assert confirmed.season_year == 2027 and confirmed.declaration_number != sown.declaration_number
    assert list(none_for_others.drafts) == []


async def test_a_holiday_added_by_an_admin_moves_the_autumn_windows_last_day(agro: RunningService) -> None:
    read = await stub(agro).GetHolidayCalendar(agro_service_pb2.GetHolidayCalendarRequest(year=2026))
    calendar = agro_pb2.HolidayCalendar(year=2026, holidays=list(read.holidays))
    # The Cabinet moves a holiday onto Wednesday 30 December.
    calendar.holidays.append(
        agro_pb2.Holiday(date=date_pb2.Date(year=2026, month=12, day=30), name="Köçürülmüş istirahət günü")
    )
    request = agro_service_pb2.UpdateHolidayCalendarRequest(request_id=new_request_id(), calendar=calendar)

    updated = await stub(agro).UpdateHolidayCalendar(request, metadata=admin_auth())
    window = await stub(agro).GetSowingWindow(agro_service_pb2.GetSowingWindowRequest())

    assert len(updated.holidays) == len(read.holidays) + 1
    assert (window.last_day.month, window.last_day.day) == (12, 29)
