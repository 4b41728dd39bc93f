"""When a sowing window opens: DeclarationWindowOpened once, and for every farmer who declared
in the same window last year (and is not banned from this season), drafts of this year's
declarations copied from last year's, with DeclarationDraftsPrepared carrying what a citizen
notice needs, so that declaring is a confirmation, not a form. All in the transaction that
marks the window announced."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

from sqlalchemy.orm import Session

from asan.agro.v1 import agro_pb2, events_pb2
from services.agro import queries
from services.agro.declaring import SOURCE
from services.agro.numbers import id_for
from services.agro.tables import DeclarationDraftRow, runtime_tables
from services.agro.windows import Window, window_on
from services.runtime.db import utcnow
from services.runtime.enums import proto_value
from services.runtime.events import add_event
from services.runtime.periodic import PeriodicTask
from services.runtime.protos import proto_date

log = logging.getLogger("asan.agro.announcements")


def announce_open_window(session: Session, today: date) -> Window | None:
    """Announces the window open today unless it was announced; returns it when announced now."""
    window = window_on(today, queries.holidays_of_years(session, today.year, today.year))
    if window is None:
        return None
    row = queries.lock_window(session, window.season_year, window.campaign.value)
    if row.opened_reported:
        return None
    row.opened_reported = True
    _prepare_drafts(session, window)
    add_event(
        session,
        runtime_tables.outbox,
        SOURCE,
        events_pb2.DeclarationWindowOpened(
            campaign=proto_value(agro_pb2.Campaign, "CAMPAIGN_", window.campaign.value),
            season_year=window.season_year,
            first_day=proto_date(window.first_day),
            last_day=proto_date(window.last_day),
        ),
    )
    return window


def _prepare_drafts(session: Session, window: Window) -> None:
    now = utcnow()
    by_farmer: dict[str, int] = {}
    for last_year in queries.standing_declarations(session, window.season_year - 1, window.campaign.value):
        if queries.is_banned(session, last_year.farmer_fin, window.season_year) is not None:
            continue
        session.add(
            DeclarationDraftRow(
                id=id_for("draft", last_year.id, str(window.season_year)),
                farmer_fin=last_year.farmer_fin,
                parcel_id=last_year.parcel_id,
                crop=last_year.crop,
                season_year=window.season_year,
                campaign=window.campaign.value,
                contour_geojson=last_year.contour_geojson,
                modern_irrigation=last_year.modern_irrigation,
                analysis_reference=last_year.analysis_reference,
                insurance_reference=last_year.insurance_reference,
                from_declaration_id=last_year.id,
                created_at=now,
            )
        )
        by_farmer[last_year.farmer_fin] = by_farmer.get(last_year.farmer_fin, 0) + 1
    for fin, count in sorted(by_farmer.items()):
        add_event(
            session,
            runtime_tables.outbox,
            SOURCE,
            events_pb2.DeclarationDraftsPrepared(
                farmer_fin=fin,
                season_year=window.season_year,
                campaign=proto_value(agro_pb2.Campaign, "CAMPAIGN_", window.campaign.value),
                draft_count=count,
                last_day=proto_date(window.last_day),
            ),
        )
    session.flush()


def announcement_task(today: Callable[[], date], interval_seconds: float) -> PeriodicTask[Window | None]:
    def announced(window: Window | None) -> None:
        if window is not None:
            log.info(
                "sowing window opened",
                extra={"campaign": window.campaign.value, "season_year": window.season_year},
            )

    return PeriodicTask(
        "announce_sowing_windows",
        interval_seconds,
        lambda session: announce_open_window(session, today()),
        committed=announced,
    )
