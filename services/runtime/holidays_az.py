"""Azerbaijan's non-working public holidays: the one source every service's holiday table is
seeded from (`services.runtime.holidays.seed_holidays`).

Labour Code of Azerbaijan, art. 105. Fixed-date: New Year (1-2 Jan), National Mourning Day
(20 Jan), Women's Day (8 Mar), Novruz (20-24 Mar), Victory over Fascism (9 May), Independence
Day (28 May), National Salvation Day (15 Jun), Armed Forces Day (26 Jun), Victory Day (8 Nov),
State Flag Day (9 Nov), Solidarity Day of World Azerbaijanis (31 Dec). Movable (lunar): Ramazan
and Qurban bayramı, two days each, on the dates expected from the Hijri calendar; the Caucasus
Muslims Board and the Cabinet confirm them each year, and the Cabinet's transfers of holidays
falling on a weekend are added by an admin (each service's UpdateHolidayCalendar).

A year is listed once its movable dates are: adding one means adding its Ramazan and Qurban
days below, and a migration in each service that seeds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

FIXED_HOLIDAYS: tuple[tuple[tuple[int, int], str], ...] = (
    ((1, 1), "Yeni il bayramı"),
    ((1, 2), "Yeni il bayramı"),
    ((1, 20), "Ümumxalq hüzn günü"),
    ((3, 8), "Qadınlar günü"),
    ((3, 20), "Novruz bayramı"),
    ((3, 21), "Novruz bayramı"),
    ((3, 22), "Novruz bayramı"),
    ((3, 23), "Novruz bayramı"),
    ((3, 24), "Novruz bayramı"),
    ((5, 9), "Faşizm üzərində qələbə günü"),
    ((5, 28), "Müstəqillik günü"),
    ((6, 15), "Azərbaycan xalqının milli qurtuluş günü"),
    ((6, 26), "Azərbaycan Respublikasının Silahlı Qüvvələri günü"),
    ((11, 8), "Zəfər günü"),
    ((11, 9), "Dövlət bayrağı günü"),
    ((12, 31), "Dünya azərbaycanlılarının həmrəyliyi günü"),
)
MOVABLE_HOLIDAYS: tuple[tuple[date, str], ...] = (
    (date(2026, 3, 20), "Ramazan bayramı"),
    (date(2026, 3, 21), "Ramazan bayramı"),
    (date(2026, 5, 27), "Qurban bayramı"),
    (date(2026, 5, 28), "Qurban bayramı"),
    (date(2027, 3, 10), "Ramazan bayramı"),
    (date(2027, 3, 11), "Ramazan bayramı"),
    (date(2027, 5, 16), "Qurban bayramı"),
    (date(2027, 5, 17), "Qurban bayramı"),
)
YEARS = frozenset(day.year for day, _ in MOVABLE_HOLIDAYS)


def public_holidays(years: Iterable[int]) -> dict[date, str]:
    """The public holidays of `years`, in date order; two holidays on one day (Novruz and
    Ramazan on 20 March 2026) are one day named after both. ValueError for a year whose
    movable holidays are not known yet."""
    wanted = set(years)
    if unknown := sorted(wanted - YEARS):
        raise ValueError(f"no public holidays known for {unknown}; known: {sorted(YEARS)}")
    days: dict[date, list[str]] = {}
    for year in sorted(wanted):
        for (month, day_of_month), name in FIXED_HOLIDAYS:
            days.setdefault(date(year, month, day_of_month), []).append(name)
    for movable, name in MOVABLE_HOLIDAYS:
        if movable.year in wanted:
            days.setdefault(movable, []).append(name)
    return {day: ", ".join(names) for day, names in sorted(days.items())}
