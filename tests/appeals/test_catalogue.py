"""The catalogue and the calendar over real gRPC: anyone reads agencies, categories and holidays;
admins change them, each change a new version; appeals are checked against the version in force
when they were submitted."""

from __future__ import annotations

import asyncio
from datetime import date

import grpc
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from google.protobuf import field_mask_pb2
from google.type import date_pb2
from sqlalchemy import select

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2
from services.appeals import reference
from services.appeals.catalogue import Agency, Names
from services.appeals.tables import AgencyRow, Base
from services.runtime.db import utcnow
from services.runtime.holidays_az import public_holidays
from tests.appeals.builders import (
    ROADS,
    Stub,
    admin,
    citizen,
    in_database,
    new_id,
    officer,
    pothole,
    rejected,
    submit,
)
from tests.support.databases import waits_for_a_lock
from tests.support.servers import RunningService
from tests.support.waiting import eventually


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


# --- Updates with a mask (AIP-134) --------------------------------------------------------------


def agency_update(agency: appeals_pb2.Agency, *paths: str) -> appeals_service_pb2.UpdateAgencyRequest:
    return appeals_service_pb2.UpdateAgencyRequest(
        request_id=new_id(), agency=agency, update_mask=field_mask_pb2.FieldMask(paths=paths)
    )


async def test_an_agency_update_with_a_mask_changes_only_the_named_fields(stub: Stub) -> None:
    whole = appeals_pb2.Agency(
        code="MASK_ONE",
        name=appeals_pb2.LocalizedText(az="Maska Agentliyi", en="Mask Agency"),
        supervisor_subjects=["mask-supervisor-1"],
    )
    await stub.UpdateAgency(agency_update(whole), metadata=admin())

    changed = await stub.UpdateAgency(
        agency_update(
            appeals_pb2.Agency(code="MASK_ONE", supervisor_subjects=["mask-supervisor-2"]),
            "supervisor_subjects",
        ),
        metadata=admin(),
    )
    assert (changed.version, changed.name.az, changed.name.en) == (2, "Maska Agentliyi", "Mask Agency")
    assert list(changed.supervisor_subjects) == ["mask-supervisor-2"]  # replaced, not appended

    # No mask, or "*": the agency as given, whole; what it leaves out is gone.
    replaced = await stub.UpdateAgency(
        agency_update(appeals_pb2.Agency(code="MASK_ONE", name=appeals_pb2.LocalizedText(az="Yeni ad")), "*"),
        metadata=admin(),
    )
    assert (replaced.version, replaced.name.az, replaced.name.en) == (3, "Yeni ad", "")
    assert list(replaced.supervisor_subjects) == []


async def test_an_agency_update_waiting_for_another_is_the_next_version_on_top_of_it(
    appeals: RunningService, stub: Stub
) -> None:
    """A masked update of an agency that waits for another admin's change of it is applied to
    that change, as the next version, and one version stays current. (On PostgreSQL the
    waiting update used to find no current entry and was refused for the name it did not give.)"""
    database = appeals.server.database
    if not database.is_postgresql:
        pytest.skip("SQLite runs one writer at a time: one change cannot wait inside another")
    whole = appeals_pb2.Agency(
        code="MASK_WAIT", name=appeals_pb2.LocalizedText(az="Gözləyən Agentlik"), supervisor_subjects=["s-1"]
    )
    await stub.UpdateAgency(agency_update(whole), metadata=admin())
    supervisors = agency_update(
        appeals_pb2.Agency(code="MASK_WAIT", supervisor_subjects=["s-2"]), "supervisor_subjects"
    )
    with database.transaction() as first:  # the other admin's change, not yet committed
        renamed = Agency("MASK_WAIT", Names("Yeni Agentlik", "", ""), ("s-1",))
        reference.change_agency(first, renamed, "admin-7", utcnow())
        second = asyncio.ensure_future(stub.UpdateAgency(supervisors, metadata=admin()))
        await eventually(lambda: waits_for_a_lock(database), what="the update waiting for the other change")
    updated = await second

    assert (updated.version, updated.name.az, list(updated.supervisor_subjects)) == (
        3,
        "Yeni Agentlik",
        ["s-2"],
    )
    current = in_database(
        appeals,
        lambda s: s.scalars(
            select(AgencyRow.version).where(AgencyRow.code == "MASK_WAIT", AgencyRow.valid_to.is_(None))
        ).all(),
    )
    assert current == [3]


async def test_a_mask_naming_no_field_is_refused_and_a_new_agency_still_needs_its_name(stub: Stub) -> None:
    unknown = await rejected(
        stub.UpdateAgency(
            agency_update(appeals_pb2.Agency(code="MASK_TWO"), "name", "nickname"), metadata=admin()
        )
    )
    assert unknown.violations == {"update_mask": "UNKNOWN_FIELD"}
    nothing = await rejected(
        stub.UpdateAgency(
            agency_update(appeals_pb2.Agency(code="MASK_TWO"), "code", "version"), metadata=admin()
        )
    )
    assert nothing.violations == {"update_mask": "NOTHING_TO_CHANGE"}

    # A new agency has no current entry to keep a name from.
    nameless = await rejected(
        stub.UpdateAgency(
            agency_update(
                appeals_pb2.Agency(code="MASK_TWO", supervisor_subjects=["s-1"]), "supervisor_subjects"
            ),
            metadata=admin(),
        )
    )
    assert nameless.violations == {"agency.name.az": "REQUIRED"}


async def test_a_category_update_with_a_mask_keeps_the_attributes_it_does_not_name(stub: Stub) -> None:
    # A copy of the roads category, so that the other tests keep theirs.
    roads = await stub.GetCategory(appeals_service_pb2.GetCategoryRequest(category_code=ROADS))
    roads.code = "roads.masked"
    roads = await stub.UpdateCategory(
        appeals_service_pb2.UpdateCategoryRequest(request_id=new_id(), category=roads), metadata=admin()
    )
    closed = await stub.UpdateCategory(
        appeals_service_pb2.UpdateCategoryRequest(
            request_id=new_id(),
            category=appeals_pb2.Category(code=roads.code, active=False),
            update_mask=field_mask_pb2.FieldMask(paths=["active"]),
        ),
        metadata=admin(),
    )
    assert not closed.active and closed.version == roads.version + 1
    assert (closed.name, list(closed.attributes), closed.agency_code) == (
        roads.name,
        list(roads.attributes),
        roads.agency_code,
    )
    # Attributes named by the mask are the given list, whole.
    reopened = await stub.UpdateCategory(
        appeals_service_pb2.UpdateCategoryRequest(
            request_id=new_id(),
            category=appeals_pb2.Category(code=roads.code, active=True, attributes=roads.attributes[:1]),
            update_mask=field_mask_pb2.FieldMask(paths=["active", "attributes"]),
        ),
        metadata=admin(),
    )
    assert reopened.active and [a.code for a in reopened.attributes] == ["damage_kind"]


async def test_a_holiday_calendar_update_changes_its_holidays_only(stub: Stub) -> None:
    calendar = await stub.GetHolidayCalendar(appeals_service_pb2.GetHolidayCalendarRequest(year=2027))

    def update(*paths: str) -> appeals_service_pb2.UpdateHolidayCalendarRequest:
        return appeals_service_pb2.UpdateHolidayCalendarRequest(
            request_id=new_id(), calendar=calendar, update_mask=field_mask_pb2.FieldMask(paths=paths)
        )

    kept = await stub.UpdateHolidayCalendar(update("holidays"), metadata=admin())
    assert kept == calendar
    unknown = await rejected(stub.UpdateHolidayCalendar(update("holidays", "days"), metadata=admin()))
    assert unknown.violations == {"update_mask": "UNKNOWN_FIELD"}
    nothing = await rejected(stub.UpdateHolidayCalendar(update("year"), metadata=admin()))
    assert nothing.violations == {"update_mask": "NOTHING_TO_CHANGE"}


async def test_a_malformed_change_by_a_non_admin_is_told_what_is_wrong_first(stub: Stub) -> None:
    """Validation comes before authorisation: a request left empty names its missing fields."""
    empty = await rejected(stub.UpdateAgency(appeals_service_pb2.UpdateAgencyRequest(), metadata=officer()))
    assert empty.violations == {"request_id": "REQUIRED", "agency": "REQUIRED"}
