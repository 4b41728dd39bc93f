"""DeclarationWindowOpened: once a sowing window is open, it is announced once, so that
citizen notices can tell farmers to declare."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

from sqlalchemy.orm import Session

from asan.agro.v1 import agro_pb2, events_pb2
from services.agro import queries
from services.agro.declaring import SOURCE
from services.agro.tables import runtime_tables
from services.agro.windows import Window, window_on
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
