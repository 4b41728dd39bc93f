"""The legal clock of an appeal (Law "On citizens' appeals", 2015), on the runtime's working-day
calendar (Asia/Baku: Saturday and Sunday off, and the holidays of appeals' own table).

- An appeal is answered within 15 working days of its receipt; 30 when it needs additional
  study; the one extension adds at most 30 working days (Art. 10).
- A body that is not competent forwards within 3 working days of its receipt (Art. 7.10); the
  receiving body's time runs from its own receipt. A reopened appeal is received anew.
- An appeal is due at the end (24:00 in Baku) of its last working day.
- The citizen reopens within 30 calendar days of the answer.
- The repeat rule (Art. 8.1.4) counts reasoned answers of the last year.

Pure: dates in, dates out. `received` and `today` are Baku dates; the caller reads the holidays.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from services.runtime.baku_time import end_of_baku_day
from services.runtime.workdays import add_working_days, working_days_between

ANSWER_WORKING_DAYS = 15
STUDY_WORKING_DAYS = 30
MAX_EXTENSION_WORKING_DAYS = 30
FORWARD_WINDOW_WORKING_DAYS = 3
REOPEN_WINDOW_DAYS = 30
REPEAT_ANSWERS = 3
# An appeal is "due soon" from this many working days before its due date.
DUE_SOON_WORKING_DAYS = 1


@dataclass(frozen=True)
class Clock:
    """Where an appeal's legal time stands at the agency that has it."""

    received: date
    study: bool = False
    # Working days of the one extension; 0 before it is granted.
    extension_working_days: int = 0

    @property
    def term_working_days(self) -> int:
        base = STUDY_WORKING_DAYS if self.study else ANSWER_WORKING_DAYS
        return base + self.extension_working_days

    def due_date(self, holidays: Collection[date]) -> date:
        return add_working_days(self.received, self.term_working_days, holidays)


def due_time(due: date) -> datetime:
    """The instant an appeal becomes overdue: the end of its due date in Baku."""
    return end_of_baku_day(due)


def forward_deadline(received: date, holidays: Collection[date]) -> date:
    """The last day an agency may forward an appeal it received on `received`."""
    return add_working_days(received, FORWARD_WINDOW_WORKING_DAYS, holidays)


def may_forward(received: date, today: date, holidays: Collection[date]) -> bool:
    return today <= forward_deadline(received, holidays)


def reopen_deadline(answered: date) -> date:
    return answered + timedelta(days=REOPEN_WINDOW_DAYS)


def may_reopen(answered: date, today: date) -> bool:
    return today <= reopen_deadline(answered)


def working_days_to_answer(received: date, answered: date, holidays: Collection[date]) -> int:
    """Working days after the receipt up to and including the answer's day."""
    return working_days_between(received, answered, holidays)


def answered_on_time(answered_at: datetime, due_at: datetime) -> bool:
    return answered_at < due_at


def is_due_soon(due: date, today: date, holidays: Collection[date]) -> bool:
    """True from `DUE_SOON_WORKING_DAYS` working days before the due date to the date itself."""
    return due <= add_working_days(today, DUE_SOON_WORKING_DAYS, holidays)


def one_year_before(today: date) -> date:
    """The same day a year earlier; 29 February goes back to 28 February."""
    try:
        return today.replace(year=today.year - 1)
    except ValueError:
        return today.replace(year=today.year - 1, day=28)


def reasoned_answers_within_a_year(answer_days: Iterable[date], today: date) -> int:
    """How many of the answers (their Baku dates) fall within the year up to `today`."""
    since = one_year_before(today)
    return sum(1 for day in answer_days if since <= day <= today)


def repeat_rule_met(answer_days: Iterable[date], today: date) -> bool:
    """Art. 8.1.4: at least 3 reasoned answers on the same matter within one year."""
    return reasoned_answers_within_a_year(answer_days, today) >= REPEAT_ANSWERS
