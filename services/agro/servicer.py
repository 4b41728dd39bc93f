"""The AgroService gRPC servicer. Each method reads: validate the request (requests), authorise
the caller (access), call the rule or the flow (registry, declaring, review), and answer with
the API message (convert)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import grpc
from sqlalchemy.orm import Session

from asan.agro.v1 import agro_pb2, agro_service_pb2, agro_service_pb2_grpc
from asan.common.v1 import audit_pb2
from services.agro import access, convert, declaring, queries, registry, reissues, requests, review
from services.agro.metrics import AgroMetrics
from services.agro.numbers import id_for
from services.agro.subsidy import SQUARE_METRES_PER_HECTARE
from services.agro.tables import DeclarationDraftRow, DeclarationRow, holiday_table, runtime_tables
from services.runtime.audit import list_audit_records
from services.runtime.auth import Principal
from services.runtime.db import Database, utcnow
from services.runtime.errors import NotFound
from services.runtime.holidays import holidays_of_year, replace_holidays_of_year
from services.runtime.idempotency import Idempotency, idempotency_key
from services.runtime.interceptors import require_principal
from services.runtime.paging import (
    decode_keyset,
    decode_page_token,
    encode_keyset,
    encode_page_token,
    filter_fingerprint,
    page_size,
)
from services.runtime.validation import Violations, check_request_id

Context = grpc.aio.ServicerContext[Any, Any]


class AgroServicer(agro_service_pb2_grpc.AgroServiceServicer):
    def __init__(
        self,
        database: Database,
        metrics: AgroMetrics,
        today: Callable[[], date],
        *,
        payout_max_attempts: int,
    ) -> None:
        self.database = database
        self.metrics = metrics
        # The day in Baku: the sowing windows follow it (a fixed day in the sandbox and tests).
        self.today = today
        # The payout flow's automatic attempts of a leg: past them a failed leg awaits the officer.
        self.payout_max_attempts = payout_max_attempts
        self.idempotency = Idempotency(runtime_tables.idempotency_keys)

    def _declarations(self, session: Session, rows: list[DeclarationRow]) -> list[agro_pb2.Declaration]:
        """The declarations with their payout legs."""
        legs = queries.payout_legs(session, [row.id for row in rows])
        return [
            convert.declaration(row, convert.payout_legs(legs.get(row.id, []), self.payout_max_attempts))
            for row in rows
        ]

    # --- Farmers and parcels -------------------------------------------------------------------

    async def RegisterFarmer(
        self, request: agro_service_pb2.RegisterFarmerRequest, context: Context
    ) -> agro_pb2.Farmer:
        new = requests.new_farmer(request, Violations())
        principal = require_principal()
        fin = access.ensure_farmer(principal)
        key = idempotency_key(request, principal)
        return await self.idempotency.run(
            self.database, key, agro_pb2.Farmer, lambda s: registry.register_farmer(s, fin, new, utcnow())
        )

    async def GetFarmer(
        self, request: agro_service_pb2.GetFarmerRequest, context: Context
    ) -> agro_pb2.Farmer:
        violations = Violations()
        requests.check_fin(violations, request.fin)
        violations.require(request)
        violations.raise_if_any()
        principal = require_principal()

        def read(session: Session) -> agro_pb2.Farmer:
            row = queries.farmer(session, request.fin)
            if row is None or not access.may_see(principal, row.fin, None):
                raise access.farmer_not_found(request.fin)
            return convert.farmer(row)

        return await self.database.run(read)

    async def ChangeFarmerAccounts(
        self, request: agro_service_pb2.ChangeFarmerAccountsRequest, context: Context
    ) -> agro_pb2.Farmer:
        changed = requests.changed_accounts(request, Violations())
        principal = require_principal()
        fin = access.accounts_holder(principal, changed.fin)
        if fin is None:
            requests.require_officers_fin(Violations())
        key = idempotency_key(request, principal)
        own = principal.fin is not None
        return await self.idempotency.run(
            self.database,
            key,
            agro_pb2.Farmer,
            lambda s: registry.change_accounts(
                s, fin, changed, own=own, request_id=key.request_id, now=utcnow()
            ),
        )

    async def CreateParcel(
        self, request: agro_service_pb2.CreateParcelRequest, context: Context
    ) -> agro_pb2.Parcel:
        new = requests.new_parcel(request, Violations())
        principal = require_principal()
        fin = access.ensure_farmer(principal)
        key = idempotency_key(request, principal)
        parcel_id = id_for("parcel", key.request_id, key.fingerprint)
        return await self.idempotency.run(
            self.database,
            key,
            agro_pb2.Parcel,
            lambda s: registry.create_parcel(s, fin, parcel_id, new, utcnow()),
        )

    async def GetParcel(
        self, request: agro_service_pb2.GetParcelRequest, context: Context
    ) -> agro_pb2.Parcel:
        violations = Violations()
        violations.require(request)
        violations.raise_if_any()
        principal = require_principal()

        def read(session: Session) -> agro_pb2.Parcel:
            row = queries.parcel(session, request.parcel_id)
            if row is None or not access.may_see(principal, row.farmer_fin, row.district):
                raise access.parcel_not_found(request.parcel_id)
            return convert.parcel(row)

        return await self.database.run(read)

    async def ListParcels(
        self, request: agro_service_pb2.ListParcelsRequest, context: Context
    ) -> agro_service_pb2.ListParcelsResponse:
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        violations.raise_if_any()
        fin, district = _reach(require_principal())
        # The token is bound to whose parcels it pages through, known once the caller is.
        fingerprint = filter_fingerprint("parcels", fin, district)
        after = decode_keyset(violations, request.page_token, fingerprint)
        violations.raise_if_any()
        rows = await self.database.run(lambda s: queries.list_parcels(s, fin, district, after, size + 1))
        response = agro_service_pb2.ListParcelsResponse(parcels=[convert.parcel(row) for row in rows[:size]])
        if len(rows) > size:
            response.next_page_token = encode_keyset(
                rows[size - 1].created_at, rows[size - 1].id, fingerprint
            )
        return response

    async def SetEligibleArea(
        self, request: agro_service_pb2.SetEligibleAreaRequest, context: Context
    ) -> agro_pb2.Parcel:
        area = requests.eligible_area(request, Violations())
        principal = require_principal()
        officer = access.ensure_officer(principal)
        key = idempotency_key(request, principal)
        return await self.idempotency.run(
            self.database,
            key,
            agro_pb2.Parcel,
            lambda s: registry.set_eligible_area(s, officer, request.parcel_id, area),
        )

    # --- Declaring -----------------------------------------------------------------------------

    async def QuoteSubsidy(
        self, request: agro_service_pb2.QuoteSubsidyRequest, context: Context
    ) -> agro_pb2.Subsidy:
        new = requests.new_declaration(request, Violations())
        fin = access.ensure_farmer(require_principal())
        today = self.today()
        return await self.database.run(lambda s: declaring.quote(s, fin, new, today))

    async def CreateDeclaration(
        self, request: agro_service_pb2.CreateDeclarationRequest, context: Context
    ) -> agro_pb2.Declaration:
        new = requests.new_declaration(request, Violations())
        principal = require_principal()
        fin = access.ensure_farmer(principal)
        key = idempotency_key(request, principal)
        declaration_id = id_for("declaration", key.request_id, key.fingerprint)
        today, now = self.today(), utcnow()
        made: list[declaring.Declared] = []

        def declare(session: Session) -> agro_pb2.Declaration:
            declared = declaring.declare(
                session, fin, new, declaration_id=declaration_id, today=today, now=now
            )
            made.append(declared)
            return declared.response

        try:
            response = await self.idempotency.run(self.database, key, agro_pb2.Declaration, declare)
        except declaring.OverlapFound as overlap:
            self.metrics.overlap_conflicts.inc()
            raise overlap.error from None
        # Counted once, not per replay, and only once committed.
        for declared in made[-1:]:
            self.metrics.declarations.labels(declared.crop, declared.season).inc()
            self.metrics.hectares.labels(declared.crop, declared.season).inc(
                declared.area_square_metres / SQUARE_METRES_PER_HECTARE
            )
        return response

    async def GetDeclaration(
        self, request: agro_service_pb2.GetDeclarationRequest, context: Context
    ) -> agro_pb2.Declaration:
        violations = Violations()
        requests.check_declaration_number(violations, request.declaration_number)
        violations.require(request)
        violations.raise_if_any()
        principal = require_principal()

        def read(session: Session) -> agro_pb2.Declaration:
            row = queries.declaration_by_number(session, request.declaration_number)
            if row is None or not access.may_see(principal, row.farmer_fin, row.district):
                raise access.declaration_not_found(request.declaration_number)
            return self._declarations(session, [row])[0]

        return await self.database.run(read)

    async def ListDeclarations(
        self, request: agro_service_pb2.ListDeclarationsRequest, context: Context
    ) -> agro_service_pb2.ListDeclarationsResponse:
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        status = requests.status_filter(request, violations)
        violations.raise_if_any()
        fin, district = _reach(require_principal())
        where = queries.DeclarationFilter(fin, district, status, request.payout_awaits_officer)
        fingerprint = filter_fingerprint("declarations", where)
        after = decode_keyset(violations, request.page_token, fingerprint)
        violations.raise_if_any()

        def read(session: Session) -> tuple[list[DeclarationRow], list[agro_pb2.Declaration]]:
            rows = queries.list_declarations(
                session, where, after, size + 1, max_attempts=self.payout_max_attempts
            )
            return rows, self._declarations(session, rows[:size])

        rows, declarations = await self.database.run(read)
        response = agro_service_pb2.ListDeclarationsResponse(declarations=declarations)
        if len(rows) > size:
            response.next_page_token = encode_keyset(
                rows[size - 1].declared_at, rows[size - 1].id, fingerprint
            )
        return response

    async def ListDeclarationDrafts(
        self, request: agro_service_pb2.ListDeclarationDraftsRequest, context: Context
    ) -> agro_service_pb2.ListDeclarationDraftsResponse:
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        violations.raise_if_any()
        fin = access.ensure_farmer(require_principal())
        fingerprint = filter_fingerprint("drafts", fin)
        after = decode_keyset(violations, request.page_token, fingerprint)
        violations.raise_if_any()
        today = self.today()

        def read(session: Session) -> list[DeclarationDraftRow]:
            window = declaring.open_window(session, today)
            if window is None:
                return []
            window_key = (window.season_year, window.campaign.value)
            return queries.list_drafts(session, fin, window_key, after, size + 1)

        rows = await self.database.run(read)
        response = agro_service_pb2.ListDeclarationDraftsResponse(
            drafts=[convert.draft(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = encode_keyset(
                rows[size - 1].created_at, rows[size - 1].id, fingerprint
            )
        return response

    # --- Review --------------------------------------------------------------------------------

    async def RecordMonitoring(
        self, request: agro_service_pb2.RecordMonitoringRequest, context: Context
    ) -> agro_pb2.Declaration:
        monitored = requests.monitored_area(request, Violations())
        principal = require_principal()
        officer = access.ensure_officer(principal)
        key = idempotency_key(request, principal)
        return await self.idempotency.run(
            self.database,
            key,
            agro_pb2.Declaration,
            lambda s: review.record_monitoring(
                s, review.declaration_in_reach(s, officer, request.declaration_number), monitored
            ),
        )

    async def ApproveDeclaration(
        self, request: agro_service_pb2.ApproveDeclarationRequest, context: Context
    ) -> agro_pb2.Declaration:
        violations = Violations()
        check_request_id(violations, request.request_id)
        requests.check_declaration_number(violations, request.declaration_number)
        violations.require(request)
        violations.raise_if_any()
        principal = require_principal()
        officer = access.ensure_officer(principal)
        key = idempotency_key(request, principal)
        approved: list[review.Approved] = []

        def approve(session: Session) -> agro_pb2.Declaration:
            row = review.declaration_in_reach(session, officer, request.declaration_number)
            result = review.approve(session, row, now=utcnow(), decided_by=_decided_by(principal))
            approved.append(result)
            return result.response

        response = await self.idempotency.run(self.database, key, agro_pb2.Declaration, approve)
        for result in approved[-1:]:
            self.metrics.subsidies_approved.inc(result.total_qepik)
        return response

    async def RejectDeclaration(
        self, request: agro_service_pb2.RejectDeclarationRequest, context: Context
    ) -> agro_pb2.Declaration:
        reason = requests.rejection_reason(request, Violations())
        principal = require_principal()
        officer = access.ensure_officer(principal)
        key = idempotency_key(request, principal)
        return await self.idempotency.run(
            self.database,
            key,
            agro_pb2.Declaration,
            lambda s: review.reject(
                s,
                review.declaration_in_reach(s, officer, request.declaration_number),
                reason,
                now=utcnow(),
                decided_by=_decided_by(principal),
            ),
        )

    async def RetryPayoutLeg(
        self, request: agro_service_pb2.RetryPayoutLegRequest, context: Context
    ) -> agro_pb2.Declaration:
        leg = requests.reissued_leg(request, Violations())
        principal = require_principal()
        officer = access.ensure_officer(principal)
        key = idempotency_key(request, principal)

        def reissue(session: Session) -> agro_pb2.Declaration:
            row = review.declaration_in_reach(session, officer, request.declaration_number)
            reissues.reissue(
                session,
                row,
                leg,
                max_attempts=self.payout_max_attempts,
                now=utcnow(),
                reissued_by=_decided_by(principal),
            )
            return self._declarations(session, [row])[0]

        # The payout flow sends the re-issued leg within AGRO_PAYOUT_SEND_SECONDS.
        return await self.idempotency.run(self.database, key, agro_pb2.Declaration, reissue)

    # --- Public --------------------------------------------------------------------------------

    async def GetCoefficientTable(
        self, request: agro_service_pb2.GetCoefficientTableRequest, context: Context
    ) -> agro_pb2.CoefficientTable:
        violations = Violations()
        requests.check_season_year(violations, request.season_year)
        violations.require(request)
        violations.raise_if_any()
        version, rows = await self.database.run(lambda s: queries.coefficient_table(s, request.season_year))
        if version == 0:
            raise NotFound(
                message=f"No coefficient table for the {request.season_year} season.",
                reason="COEFFICIENT_TABLE_NOT_FOUND",
                metadata={"season_year": str(request.season_year)},
            )
        return convert.coefficient_table(request.season_year, version, rows)

    async def UpdateCoefficientTable(
        self, request: agro_service_pb2.UpdateCoefficientTableRequest, context: Context
    ) -> agro_pb2.CoefficientTable:
        rows = requests.coefficient_table(request, Violations())
        principal = require_principal()
        access.ensure_admin(principal)
        year = request.table.season_year
        key = idempotency_key(request, principal)

        def replace(session: Session) -> agro_pb2.CoefficientTable:
            version = queries.add_coefficient_version(session, year, rows)
            return convert.coefficient_table(year, version, queries.coefficient_table(session, year)[1])

        return await self.idempotency.run(self.database, key, agro_pb2.CoefficientTable, replace)

    async def GetHolidayCalendar(
        self, request: agro_service_pb2.GetHolidayCalendarRequest, context: Context
    ) -> agro_pb2.HolidayCalendar:
        violations = Violations()
        requests.check_season_year(violations, request.year, "year")
        violations.require(request)
        violations.raise_if_any()
        return await self.database.run(
            lambda s: convert.holiday_calendar(request.year, holidays_of_year(s, holiday_table, request.year))
        )

    async def UpdateHolidayCalendar(
        self, request: agro_service_pb2.UpdateHolidayCalendarRequest, context: Context
    ) -> agro_pb2.HolidayCalendar:
        days = requests.holiday_calendar(request, Violations())
        principal = require_principal()
        access.ensure_admin(principal)
        key = idempotency_key(request, principal)
        year = request.calendar.year

        def replace(session: Session) -> agro_pb2.HolidayCalendar:
            replace_holidays_of_year(session, holiday_table, year, days)
            return convert.holiday_calendar(year, holidays_of_year(session, holiday_table, year))

        return await self.idempotency.run(self.database, key, agro_pb2.HolidayCalendar, replace)

    async def GetSowingWindow(
        self, request: agro_service_pb2.GetSowingWindowRequest, context: Context
    ) -> agro_pb2.SowingWindow:
        today = self.today()
        return convert.window(await self.database.run(lambda s: declaring.current_or_next_window(s, today)))

    async def ListSeasonAggregates(
        self, request: agro_service_pb2.ListSeasonAggregatesRequest, context: Context
    ) -> agro_service_pb2.ListSeasonAggregatesResponse:
        violations = Violations()
        requests.check_season_year(violations, request.season_year)
        size = page_size(violations, request.page_size, default=500)
        fingerprint = filter_fingerprint("aggregates", request.season_year)
        cursor = decode_page_token(violations, request.page_token, fingerprint)
        violations.require(request)
        violations.raise_if_any()
        rows = await self.database.run(lambda s: queries.season_aggregates(s, request.season_year))
        after = cursor.last_sort_key if cursor else ""
        rest = [row for row in rows if _aggregate_key(row) > after]
        response = agro_service_pb2.ListSeasonAggregatesResponse(
            aggregates=[convert.aggregate(row) for row in rest[:size]]
        )
        if len(rest) > size:
            response.next_page_token = encode_page_token(_aggregate_key(rest[size - 1]), "", fingerprint)
        return response

    # --- Audit trail (services.runtime.audit) -------------------------------------------------

    async def ListAuditRecords(
        self, request: audit_pb2.ListAuditRecordsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.ListAuditRecordsResponse:
        return await list_audit_records(self.database, runtime_tables, request)


def _reach(principal: Principal) -> tuple[str | None, str | None]:
    """(farmer, district) a list is limited to: a farmer's own; an officer's district (None
    for ministry-wide officers)."""
    if principal.fin is not None:
        return principal.fin, None
    officer = access.ensure_officer(principal)
    return None, officer.district


def _decided_by(principal: Principal) -> str:
    return f"{principal.kind.value}:{principal.subject}"


def _aggregate_key(row: queries.Aggregate) -> str:
    return f"{row.district}|{row.crop}|{row.campaign}"
