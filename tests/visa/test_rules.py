"""The rules of ASAN Viza at their boundaries, as pure functions: the due times in working
days, the arrival notice, the passport margin, family sizes, names, the border check."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.runtime.validation import Violations
from services.visa.domain import (
    ApplicationStatus,
    CountryPolicy,
    CountryRule,
    Decision,
    NewApplicant,
    NewApplication,
    Speed,
    StateConflict,
    VerificationResult,
    VisaFacts,
    WatchlistEntry,
    add_months,
    earliest_passport_expiry,
    earliest_standard_arrival,
    ensure_submitted,
    ensure_undecided,
    on_watchlist,
    sandbox_decision,
    standard_due_time,
    urgent_due_time,
    validate_application,
    verify,
    visa_validity,
)
from services.visa.names import latin_capitals, normalized_name

NOVRUZ_2026 = {date(2026, 3, d) for d in range(20, 25)}  # Fri 20 to Tue 24 March 2026
POLICIES = {
    "DEU": CountryPolicy("DEU", "Germany", CountryRule.EVISA, None, 1),
    "TUR": CountryPolicy("TUR", "Türkiye", CountryRule.VISA_FREE, 90, 1),
    "AFG": CountryPolicy("AFG", "Afghanistan", CountryRule.EMBASSY, None, 1),
}
TODAY = date(2026, 3, 2)  # a Monday


def baku(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=4)


# --- Due times (the working days themselves: tests/runtime/test_workdays.py) ------------------


def test_standard_is_due_at_the_end_of_the_third_working_day_in_baku() -> None:
    paid = baku(date(2026, 3, 6), 23, 30)  # Friday 23:30 in Baku (19:30 UTC)
    assert standard_due_time(paid, set()) == datetime(2026, 3, 11, 20, 0, tzinfo=UTC)  # Wed 24:00 Baku


def test_a_payment_just_after_midnight_in_baku_counts_from_that_baku_day() -> None:
    paid = baku(date(2026, 3, 7), 0, 5)  # Saturday 00:05 in Baku, still Friday in UTC
    assert standard_due_time(paid, set()) == datetime(2026, 3, 11, 20, 0, tzinfo=UTC)


def test_urgent_is_due_three_hours_later_even_on_a_holiday_night() -> None:
    paid = baku(date(2026, 3, 21), 22, 0)  # Saturday of Novruz
    assert urgent_due_time(paid) == paid + timedelta(hours=3)


@pytest.mark.parametrize(
    ("today", "holidays", "earliest"),
    [
        (date(2026, 3, 2), set(), date(2026, 3, 6)),  # Mon -> Thu is the 3rd working day; arrive Fri
        (date(2026, 3, 5), set(), date(2026, 3, 11)),  # Thu: Fri, Mon, Tue; arrive Wed
        (date(2026, 3, 19), NOVRUZ_2026, date(2026, 3, 28)),  # Thu before Novruz: Wed, Thu, Fri; arrive Sat
    ],
)
def test_standard_arrival_needs_three_working_days_notice(
    today: date, holidays: set[date], earliest: date
) -> None:
    assert earliest_standard_arrival(today, holidays) == earliest
    assert _arrival_violation(today, earliest, Speed.STANDARD, holidays) is None
    assert (
        _arrival_violation(today, earliest - timedelta(days=1), Speed.STANDARD, holidays)
        == "ARRIVAL_TOO_SOON"
    )


def test_urgent_may_arrive_today_but_not_yesterday_nor_after_90_days() -> None:
    assert _arrival_violation(TODAY, TODAY, Speed.URGENT) is None
    assert _arrival_violation(TODAY, TODAY - timedelta(days=1), Speed.URGENT) == "ARRIVAL_IN_PAST"
    assert _arrival_violation(TODAY, TODAY + timedelta(days=90), Speed.URGENT) is None
    assert _arrival_violation(TODAY, TODAY + timedelta(days=91), Speed.URGENT) == "ARRIVAL_TOO_FAR"


# --- The passport and the visa's validity ------------------------------------------------------


def test_the_visa_is_valid_90_days_from_arrival_both_days_included() -> None:
    assert visa_validity(date(2026, 4, 1)) == (date(2026, 4, 1), date(2026, 6, 29))


def test_the_passport_must_outlive_the_visa_by_three_months_to_the_day() -> None:
    arrival = date(2026, 4, 1)  # visa until 29 June, so the passport until at least 29 September
    assert earliest_passport_expiry(arrival) == date(2026, 9, 29)
    at_limit = _applicant(passport_expiry=date(2026, 9, 29))
    a_day_short = _applicant(passport_expiry=date(2026, 9, 28))
    assert _violations(NewApplication([at_limit], arrival, "TOURISM", Speed.URGENT)) == {}
    assert _violations(NewApplication([a_day_short], arrival, "TOURISM", Speed.URGENT)) == {
        "application.applicants[0].passport_expiry_date": "PASSPORT_EXPIRES_TOO_SOON"
    }


def test_three_months_after_a_month_end_is_the_end_of_that_month() -> None:
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2027, 11, 30), 3) == date(2028, 2, 29)


# --- Family sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 10])
def test_one_to_ten_people_may_apply_together(size: int) -> None:
    people = [_applicant(passport=f"P{n:07d}") for n in range(size)]
    assert _violations(NewApplication(people, date(2026, 3, 20), "TOURISM", Speed.URGENT)) == {}


def test_eleven_people_are_too_many_for_one_application() -> None:
    people = [_applicant(passport=f"P{n:07d}") for n in range(11)]
    assert _violations(NewApplication(people, date(2026, 3, 20), "TOURISM", Speed.URGENT)) == {
        "application.applicants": "TOO_MANY"
    }


def test_no_applicant_and_a_passport_given_twice_are_reported() -> None:
    assert _violations(NewApplication([], date(2026, 3, 20), "TOURISM", Speed.URGENT)) == {
        "application.applicants": "REQUIRED"
    }
    twice = [_applicant(passport="P0000001"), _applicant(passport="P0000001")]
    assert _violations(NewApplication(twice, date(2026, 3, 20), "TOURISM", Speed.URGENT)) == {
        "application.applicants[1].passport_number": "DUPLICATE"
    }


def test_nationalities_needing_no_visa_or_an_embassy_are_told_so() -> None:
    people = [
        _applicant(passport="P0000001", nationality="TUR"),
        _applicant(passport="P0000002", nationality="AFG"),
        _applicant(passport="P0000003", nationality="XXX"),
        _applicant(passport="P0000004", nationality="de"),
    ]
    assert _violations(NewApplication(people, date(2026, 3, 20), "TOURISM", Speed.URGENT)) == {
        "application.applicants[0].nationality": "VISA_NOT_REQUIRED",
        "application.applicants[1].nationality": "EVISA_NOT_AVAILABLE",
        "application.applicants[2].nationality": "UNKNOWN_COUNTRY",
        "application.applicants[3].nationality": "FORMAT",
    }


def test_every_broken_rule_is_reported_at_once() -> None:
    bad = NewApplicant("", "A" * 101, date(2030, 1, 1), None, "", "ab 12", date(2026, 4, 1), "not-an-email")
    found = _violations(NewApplication([bad], None, None, None))
    assert found == {
        "application.purpose": "REQUIRED",
        "application.speed": "REQUIRED",
        "application.applicants[0].surname": "REQUIRED",
        "application.applicants[0].given_names": "TOO_LONG",
        "application.applicants[0].date_of_birth": "IN_FUTURE",
        "application.applicants[0].sex": "REQUIRED",
        "application.applicants[0].nationality": "REQUIRED",
        "application.applicants[0].passport_number": "FORMAT",
        "application.applicants[0].email": "FORMAT",
    }


# --- Names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "compared"),
    [
        ("Əliyeva Şəhla", "ALIYEVA SHAHLA"),
        ("ƏLİYEVA ŞƏHLA", "ALIYEVA SHAHLA"),
        ("Aliyeva  Shahla", "ALIYEVA SHAHLA"),
        ("Çingiz Ağaoğlu", "CHINGIZ AGHAOGHLU"),
        ("Işıq Ömər Ürək", "ISHIQ OMAR URAK"),
        ("Müller-Lüdenscheidt", "MULLER LUDENSCHEIDT"),
        ("O'Brien", "OBRIEN"),
        ("Иванов", "IVANOV"),
    ],
)
def test_names_are_compared_in_latin_capitals(written: str, compared: str) -> None:
    assert latin_capitals(written) == compared


def test_the_normalised_name_is_surname_then_given_names() -> None:
    assert normalized_name("Əliyev", "Rəşad") == normalized_name("ALIYEV", "RASHAD") == "ALIYEV RASHAD"


# --- Automatic checks --------------------------------------------------------------------------


def test_watchlist_matches_a_passport_alone_or_a_name_with_its_date_of_birth() -> None:
    entries = [
        WatchlistEntry("WL0000001", None, None),
        WatchlistEntry(None, "MUSTERMANN ERIKA", date(1964, 8, 12)),
    ]
    assert on_watchlist(entries, "WL0000001", "ANYONE ELSE", date(2000, 1, 1))
    assert on_watchlist(entries, "X1234567", "MUSTERMANN ERIKA", date(1964, 8, 12))
    assert not on_watchlist(entries, "X1234567", "MUSTERMANN ERIKA", date(1964, 8, 13))


def test_sandbox_prefixes_ask_for_their_outcome() -> None:
    assert sandbox_decision("SBXA000001") is Decision.APPROVED
    assert sandbox_decision("SBXR000001") is Decision.REFUSED
    assert sandbox_decision("C01X00T47") is None


# --- The state machine and the border ------------------------------------------------------------


def test_only_a_submitted_application_is_decided_and_each_applicant_once() -> None:
    ensure_submitted(ApplicationStatus.SUBMITTED)
    for status in (ApplicationStatus.AWAITING_PAYMENT, ApplicationStatus.DECIDED):
        with pytest.raises(StateConflict) as raised:
            ensure_submitted(status)
        assert raised.value.reason == "APPLICATION_STATE_CONFLICT"
    with pytest.raises(StateConflict) as again:
        ensure_undecided(Decision.APPROVED, "C01X00T47")
    assert again.value.reason == "APPLICANT_ALREADY_DECIDED"


@pytest.mark.parametrize(
    ("today", "shown", "used", "result"),
    [
        (date(2026, 3, 31), "C01X00T47", False, VerificationResult.NOT_YET_VALID),
        (date(2026, 4, 1), "C01X00T47", False, VerificationResult.VALID),
        (date(2026, 6, 29), "C01X00T47", False, VerificationResult.VALID),
        (date(2026, 6, 30), "C01X00T47", False, VerificationResult.EXPIRED),
        (date(2026, 4, 1), "C01X00T48", False, VerificationResult.WRONG_PASSPORT),
        (date(2026, 4, 1), "C01X00T47", True, VerificationResult.ALREADY_USED),
    ],
)
def test_border_check_at_the_edges_of_validity(
    today: date, shown: str, used: bool, result: VerificationResult
) -> None:
    visa = VisaFacts("C01X00T47", date(2026, 4, 1), date(2026, 6, 29), used)
    assert verify(visa, shown, today) is result


# --- Helpers ---------------------------------------------------------------------------------


def _applicant(
    *, passport: str = "C01X00T47", nationality: str = "DEU", passport_expiry: date = date(2030, 1, 1)
) -> NewApplicant:
    return NewApplicant(
        "Schneider",
        "Anna",
        date(1990, 4, 17),
        "FEMALE",
        nationality,
        passport,
        passport_expiry,
        "anna@example.de",
    )


def _violations(
    new: NewApplication, today: date = TODAY, holidays: set[date] | None = None
) -> dict[str, str]:
    violations = Violations()
    validate_application(new, POLICIES, holidays or set(), today, violations)
    return {v.field: v.reason for v in violations.items}


def _arrival_violation(
    today: date, arrival: date, speed: Speed, holidays: set[date] | None = None
) -> str | None:
    found = _violations(NewApplication([_applicant()], arrival, "TOURISM", speed), today, holidays)
    return found.get("application.arrival_date")
