"""The holiday table a service keeps in its own database, for counting working days
(`services.runtime.workdays`).

A service that counts working days defines it in one line, `define_holiday_table(metadata)`;
its first migration creates it with `op.create_table` (its own DDL, as every revision states
it) and calls `seed_holidays(years)` (from
`services.runtime.holidays_az`, the one source), and a later migration seeds a year added
there. Admins keep each service's table current (the Cabinet's transfers, confirmed lunar
dates) with `holidays_of_year` and `replace_holidays_of_year`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Column, Date, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.orm import Session

from services.runtime.holidays_az import public_holidays

TABLE_NAME = "holidays"
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Holiday:
    day: date
    name: str


def define_holiday_table(metadata: MetaData) -> Table:
    """Public holidays in Azerbaijan; weekends are off anyway and are not listed."""
    return Table(
        TABLE_NAME,
        metadata,
        Column("day", Date, primary_key=True),
        # The calendar is read and replaced a year at a time.
        Column("year", Integer, nullable=False, index=True),
        Column("name", String(MAX_NAME_LENGTH), nullable=False),
    )


def holidays_between(session: Session, table: Table, first: date, last: date) -> set[date]:
    """The holidays from `first` to `last`, both included: what the working-day rules take."""
    return set(session.scalars(select(table.c.day).where(table.c.day >= first, table.c.day <= last)))


def holidays_of_year(session: Session, table: Table, year: int) -> list[Holiday]:
    rows = session.execute(
        select(table.c.day, table.c.name).where(table.c.year == year).order_by(table.c.day)
    )
    return [Holiday(day, name) for day, name in rows]


def replace_holidays_of_year(session: Session, table: Table, year: int, holidays: Mapping[date, str]) -> None:
    """Makes `holidays` (each a day of `year`) the year's whole calendar."""
    if stray := sorted(day for day in holidays if day.year != year):
        raise ValueError(f"not days of {year}: {stray}")
    session.execute(delete(table).where(table.c.year == year))
    if holidays:
        session.execute(insert(table), _rows(holidays))


def seed_holidays(years: Iterable[int]) -> None:
    """Adds the public holidays of `years` from the shared source; for a migration. A migration
    names its years, so that it seeds the same days however the source grows later."""
    from alembic import op

    from services.runtime.db import new_metadata

    op.bulk_insert(define_holiday_table(new_metadata()), _rows(public_holidays(years)))


def _rows(holidays: Mapping[date, str]) -> list[dict[str, object]]:
    return [{"day": day, "year": day.year, "name": name} for day, name in sorted(holidays.items())]
