"""Working days in Azerbaijan, as every service counts them: the rules at their boundaries, the
shared public-holiday source, and a service's holiday table seeded by a real migration and
read on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.runtime.db import Database, new_metadata
from services.runtime.holidays import (
    Holiday,
    define_holiday_table,
    holidays_between,
    holidays_of_year,
    replace_holidays_of_year,
)
from services.runtime.holidays_az import public_holidays
from services.runtime.migrations import upgrade
from services.runtime.workdays import add_working_days, is_working_day, working_days_between

NOVRUZ_2026 = {date(2026, 3, d) for d in range(20, 25)}  # Fri 20 to Tue 24 March 2026
FRIDAY = date(2026, 3, 6)
SATURDAY = date(2026, 3, 7)
SUNDAY = date(2026, 3, 8)
MONDAY = date(2026, 3, 9)


# --- The rules -------------------------------------------------------------------------------


def test_saturday_sunday_and_holidays_are_off_and_other_days_work() -> None:
    assert is_working_day(FRIDAY, set())
    assert not is_working_day(SATURDAY, set())
    assert not is_working_day(SUNDAY, set())
    assert is_working_day(MONDAY, set())
    assert not is_working_day(MONDAY, {MONDAY})


def test_the_next_working_day_after_a_friday_is_the_monday() -> None:
    assert add_working_days(FRIDAY, 1, set()) == MONDAY
    assert add_working_days(SATURDAY, 1, set()) == MONDAY
    assert add_working_days(SUNDAY, 1, set()) == MONDAY


def test_the_start_day_is_not_counted_and_zero_days_is_the_start_day() -> None:
    assert add_working_days(MONDAY, 1, set()) == date(2026, 3, 10)
    assert add_working_days(SATURDAY, 0, set()) == SATURDAY


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="counts forward"):
        add_working_days(MONDAY, -1, set())


def test_three_working_days_after_a_thursday_skip_the_weekend() -> None:
    assert add_working_days(date(2026, 3, 5), 3, set()) == date(2026, 3, 10)  # Thu -> Tue


def test_three_working_days_after_a_thursday_skip_the_weekend_and_novruz() -> None:
    # Thu 19 March: Fri 20 - Tue 24 is Novruz, Sat/Sun between: Wed 25, Thu 26, Fri 27.
    assert add_working_days(date(2026, 3, 19), 3, NOVRUZ_2026) == date(2026, 3, 27)
    assert working_days_between(date(2026, 3, 19), date(2026, 3, 27), NOVRUZ_2026) == 3


def test_a_holiday_on_a_weekend_takes_no_extra_day() -> None:
    assert add_working_days(FRIDAY, 1, {SUNDAY}) == MONDAY
    assert add_working_days(FRIDAY, 1, {MONDAY}) == date(2026, 3, 10)


def test_working_days_between_counts_after_the_start_up_to_and_including_the_end() -> None:
    assert working_days_between(FRIDAY, FRIDAY, set()) == 0
    assert working_days_between(FRIDAY, SUNDAY, set()) == 0
    assert working_days_between(FRIDAY, MONDAY, set()) == 1
    assert working_days_between(MONDAY, FRIDAY, set()) == 0  # the end before the start


@pytest.mark.parametrize("count", [1, 3, 15, 30])
def test_counting_back_the_days_added_gives_the_count(count: int) -> None:
    holidays = set(public_holidays([2026]))
    start = date(2026, 3, 16)
    assert working_days_between(start, add_working_days(start, count, holidays), holidays) == count


def test_an_appeal_due_in_15_working_days_from_before_novruz_skips_the_whole_break() -> None:
    # Mon 16 March 2026: Tue-Thu are 3, Fri 20 to Tue 24 off, then Wed 25 March is the 4th ...
    # Thu 9 April the 15th.
    assert add_working_days(date(2026, 3, 16), 15, set(public_holidays([2026]))) == date(2026, 4, 9)


# --- The shared source -----------------------------------------------------------------------


def test_the_source_lists_the_labour_codes_days_and_the_lunar_ones_for_2026_and_2027() -> None:
    holidays = public_holidays([2026, 2027])

    assert len(holidays) == 37  # 16 fixed days a year, 8 lunar ones, 3 of them on a fixed day
    assert list(holidays) == sorted(holidays)
    assert holidays[date(2026, 1, 1)] == "Yeni il bayramı"
    assert holidays[date(2026, 3, 20)] == "Novruz bayramı, Ramazan bayramı"
    assert holidays[date(2026, 5, 27)] == "Qurban bayramı"
    assert holidays[date(2026, 5, 28)] == "Müstəqillik günü, Qurban bayramı"
    assert holidays[date(2027, 5, 17)] == "Qurban bayramı"
    assert holidays[date(2027, 12, 31)] == "Dünya azərbaycanlılarının həmrəyliyi günü"
    assert {day.year for day in public_holidays([2027])} == {2027}


def test_a_year_whose_lunar_holidays_are_unknown_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no public holidays known for \[2028\]"):
        public_holidays([2027, 2028])


# --- A service's table, migrated and read ------------------------------------------------------

MIGRATION = '''
"""A service's calendar: the holiday table, seeded with 2026 and 2027."""

import sqlalchemy as sa
from alembic import op

from services.runtime.holidays import seed_holidays

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holidays",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("year", sa.Integer(), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
    )
    seed_holidays([2026, 2027])


def downgrade() -> None:
    raise NotImplementedError
'''

ENV = """
from services.runtime.db import new_metadata
from services.runtime.holidays import define_holiday_table
from services.runtime.migrations import run_env

metadata = new_metadata()
define_holiday_table(metadata)
run_env(metadata)
"""


@pytest.fixture
def calendar(database_url: str, tmp_path: Path) -> Iterator[Database]:
    """A database migrated by a service's first migration that creates and seeds the table."""
    migrations = tmp_path / "migrations"
    (migrations / "versions").mkdir(parents=True)
    (migrations / "env.py").write_text(textwrap.dedent(ENV))
    (migrations / "versions" / "0001_calendar.py").write_text(MIGRATION)
    upgrade(database_url, migrations)
    database = Database(database_url, threads=1)
    yield database
    database.close()


TABLE = define_holiday_table(new_metadata())


def test_the_migration_makes_the_table_the_service_declares(calendar: Database) -> None:
    declared = new_metadata()
    define_holiday_table(declared)
    with calendar.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), declared)

    assert differences == []


def test_the_migration_seeds_the_shared_source(calendar: Database) -> None:
    seeded = calendar.run_sync(lambda s: holidays_of_year(s, TABLE, 2026) + holidays_of_year(s, TABLE, 2027))

    assert seeded == [Holiday(day, name) for day, name in public_holidays([2026, 2027]).items()]


def test_holidays_between_includes_both_ends(calendar: Database) -> None:
    def between(first: date, last: date) -> set[date]:
        return calendar.run_sync(lambda s: holidays_between(s, TABLE, first, last))

    assert between(date(2026, 3, 1), date(2026, 3, 31)) == {date(2026, 3, 8)} | NOVRUZ_2026
    assert between(date(2026, 3, 8), date(2026, 3, 8)) == {date(2026, 3, 8)}
    assert between(date(2026, 3, 9), date(2026, 3, 19)) == set()
    assert between(date(2026, 12, 31), date(2027, 1, 2)) == {
        date(2026, 12, 31),
        date(2027, 1, 1),
        date(2027, 1, 2),
    }
    assert between(date(2026, 3, 24), date(2026, 3, 20)) == set()  # an empty range


def test_replacing_a_year_leaves_the_other_years_alone(calendar: Database) -> None:
    transfer = {date(2027, 1, 1): "Yeni il bayramı", date(2027, 1, 4): "Yeni il bayramı (köçürülmüş)"}
    calendar.run_sync(lambda s: replace_holidays_of_year(s, TABLE, 2027, transfer))

    assert calendar.run_sync(lambda s: holidays_of_year(s, TABLE, 2027)) == [
        Holiday(day, name) for day, name in transfer.items()
    ]
    assert len(calendar.run_sync(lambda s: holidays_of_year(s, TABLE, 2026))) == 17
    calendar.run_sync(lambda s: replace_holidays_of_year(s, TABLE, 2027, {}))
    assert calendar.run_sync(lambda s: holidays_of_year(s, TABLE, 2027)) == []


def test_a_day_of_another_year_is_not_put_in_a_years_calendar(calendar: Database) -> None:
    with pytest.raises(ValueError, match="not days of 2027"):
        calendar.run_sync(
            lambda s: replace_holidays_of_year(s, TABLE, 2027, {date(2026, 12, 31): "Wrong year"})
        )
    assert len(calendar.run_sync(lambda s: holidays_of_year(s, TABLE, 2027))) == 20
