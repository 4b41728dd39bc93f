"""The catalogue and the calendar over real gRPC: anyone reads agencies, categories and holidays;
admins change them, each change a new version; appeals are checked against the version in force
when they were submitted."""

from __future__ import annotations

from datetime import date

import grpc
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from google.type import date_pb2

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2
from services.appeals.tables import Base
from services.runtime.holidays_az import public_holidays
from tests.appeals.builders import ROADS, Stub, admin, citizen, new_id, officer, pothole, rejected, submit
from tests.support.servers import RunningService


def test_the_migrations_make_the_tables_the_service_declares(appeals: RunningService) -> None:
    with appeals.server.database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


async def test_anyone_reads_the_categories_in_pages_and_by_agency(stub: Stub) -> None:
    first = await stub.ListCategories(appeals_service_pb2.ListCategoriesRequest(page_size=3))
    rest = await stub.ListCategories(
        appeals_service_pb2.ListCategoriesRequest(page_size=3, page_token=first.next_page_token)
    )
    codes = [c.code for c in [*first.categories, *rest.categories]]
    assert codes == sorted(codes) and len(codes) == 5 and not rest.next_page_token
    din = await stub.ListCategories(appeals_service_pb2.ListCategoriesRequest(agency_code="DIN"))
    assert [c.code for c in din.categories] == ["traffic.fine_dispute"]
    roads = await stub.GetCategory(appeals_service_pb2.GetCategoryRequest(category_code=ROADS))
    [kind, lanes] = roads.attributes
    assert (kind.code, kind.type, kind.required) == (
        "damage_kind",
        appeals_pb2.ATTRIBUTE_TYPE_SINGLE_VALUE_LIST,
        True,
    )
    assert [c.key for c in kind.choices] == ["pothole", "missing_sign", "broken_light"]
    assert (lanes.type, lanes.required, roads.name.en) == (
        appeals_pb2.ATTRIBUTE_TYPE_NUMBER,
        False,
        "Road damage",
    )
    missing = await rejected(
        stub.GetCategory(appeals_service_pb2.GetCategoryRequest(category_code="no.such"))
    )
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "CATEGORY_NOT_FOUND")


async def test_a_category_changed_by_an_admin_is_a_new_version_that_new_appeals_follow(stub: Stub) -> None:
    before = await submit(stub)
    roads = await stub.GetCategory(appeals_service_pb2.GetCategoryRequest(category_code=ROADS))
    roads.attributes.append(
        appeals_pb2.AttributeDefinition(
            code="district",
            name=appeals_pb2.LocalizedText(az="Rayon", en="District"),
            type=appeals_pb2.ATTRIBUTE_TYPE_STRING,
            required=True,
        )
    )
    changed = await stub.UpdateCategory(
        appeals_service_pb2.UpdateCategoryRequest(request_id=new_id(), category=roads), metadata=admin()
    )
    assert changed.version == 2
    missing = await rejected(submit(stub))
    assert missing.violations == {"appeal.attributes": "REQUIRED"}
    with_district = pothole()
    with_district.attributes.append(appeals_pb2.AttributeValue(code="district", values=["Binəqədi"]))
    after = await submit(stub, with_district)
    assert (before.category_version, after.category_version) == (1, 2)


async def test_only_admins_change_the_catalogue_and_a_category_needs_a_known_agency(stub: Stub) -> None:
    roads = await stub.GetCategory(appeals_service_pb2.GetCategoryRequest(category_code=ROADS))
    for caller in (officer(), citizen()):
        refusal = await rejected(
            stub.UpdateCategory(
                appeals_service_pb2.UpdateCategoryRequest(request_id=new_id(), category=roads),
                metadata=caller,
            )
        )
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ADMIN_ONLY")
    roads.agency_code = "NOPE"
    unknown = await rejected(
        stub.UpdateCategory(
            appeals_service_pb2.UpdateCategoryRequest(request_id=new_id(), category=roads), metadata=admin()
        )
    )
    assert unknown.violations == {"category.agency_code": "UNKNOWN_AGENCY"}


async def test_an_admin_adds_an_agency_with_its_supervisors(stub: Stub) -> None:
    agency = appeals_pb2.Agency(
        code="ETN",
        name=appeals_pb2.LocalizedText(az="Elm və Təhsil Nazirliyi", en="Ministry of Science and Education"),
        supervisor_subjects=["etn-supervisor-1"],
    )
    added = await stub.UpdateAgency(
        appeals_service_pb2.UpdateAgencyRequest(request_id=new_id(), agency=agency), metadata=admin()
    )
    assert (added.version, list(added.supervisor_subjects)) == (1, ["etn-supervisor-1"])
    agency.name.ru = "Министерство науки и образования"
    changed = await stub.UpdateAgency(
        appeals_service_pb2.UpdateAgencyRequest(request_id=new_id(), agency=agency), metadata=admin()
    )
    assert changed.version == 2
    listed = await stub.ListAgencies(appeals_service_pb2.ListAgenciesRequest())
    assert "ETN" in [a.code for a in listed.agencies]
    bad = appeals_pb2.Agency(code="etn", supervisor_subjects=["x", "x"])
    refusal = await rejected(
        stub.UpdateAgency(
            appeals_service_pb2.UpdateAgencyRequest(request_id=new_id(), agency=bad), metadata=admin()
        )
    )
    assert refusal.violations == {
        "agency.code": "FORMAT",
        "agency.name.az": "REQUIRED",
        "agency.supervisor_subjects": "DUPLICATE",
    }


async def test_the_holiday_table_is_seeded_from_the_shared_source_and_kept_by_admins(stub: Stub) -> None:
    calendar = await stub.GetHolidayCalendar(appeals_service_pb2.GetHolidayCalendarRequest(year=2026))
    days = [date(h.date.year, h.date.month, h.date.day) for h in calendar.holidays]
    assert days == [day for day in public_holidays([2026]) if day.year == 2026]
    # The Cabinet moves a holiday: an admin replaces the year's table.
    calendar.holidays.append(
        appeals_pb2.Holiday(date=date_pb2.Date(year=2026, month=3, day=27), name="Köçürülmüş istirahət günü")
    )
    replaced = await stub.UpdateHolidayCalendar(
        appeals_service_pb2.UpdateHolidayCalendarRequest(request_id=new_id(), calendar=calendar),
        metadata=admin(),
    )
    assert len(replaced.holidays) == len(days) + 1
    refusal = await rejected(
        stub.UpdateHolidayCalendar(
            appeals_service_pb2.UpdateHolidayCalendarRequest(request_id=new_id(), calendar=calendar),
            metadata=officer(),
        )
    )
    assert refusal.reason == "ADMIN_ONLY"
