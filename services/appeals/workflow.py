"""An appeal's life: its statuses, which action may be taken in which, and the rules each action
checks beyond the status (the forward window, one extension of each kind, the repeat rule, the
rating before a reopening and its window).

    REGISTERED --assign--> ASSIGNED --answer--> ANSWERED --rate satisfied / close--> CLOSED
        |  ^                  |                    |
        |  +----forward-------+                    +--reopen (rated unsatisfied, 30 days)--> REOPENED
        +--leave unconsidered (also from ASSIGNED)--> LEFT_UNCONSIDERED       (assign, answer)

Extending keeps the status; an overdue appeal stays where it is, flagged and escalated.
Pure: no I/O, no protobuf. A refused action is FAILED_PRECONDITION with a stable reason.
The values of the enumerations are what the database stores.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from services.appeals.deadlines import (
    MAX_EXTENSION_WORKING_DAYS,
    REOPEN_WINDOW_DAYS,
    REPEAT_ANSWERS,
    Clock,
    forward_deadline,
    may_forward,
    may_reopen,
    reasoned_answers_within_a_year,
)
from services.runtime.errors import FailedPrecondition


class AppealStatus(StrEnum):
    REGISTERED = "REGISTERED"
    ASSIGNED = "ASSIGNED"
    ANSWERED = "ANSWERED"
    REOPENED = "REOPENED"
    CLOSED = "CLOSED"
    LEFT_UNCONSIDERED = "LEFT_UNCONSIDERED"


class Outcome(StrEnum):
    SATISFIED = "SATISFIED"
    PARTLY_SATISFIED = "PARTLY_SATISFIED"
    REJECTED = "REJECTED"
    EXPLAINED = "EXPLAINED"


class Rating(StrEnum):
    SATISFIED = "SATISFIED"
    UNSATISFIED = "UNSATISFIED"


class ExtensionKind(StrEnum):
    STUDY = "STUDY"
    INFORMATION_REQUEST = "INFORMATION_REQUEST"


class Action(StrEnum):
    ASSIGN = "ASSIGN"
    FORWARD = "FORWARD"
    EXTEND = "EXTEND"
    ANSWER = "ANSWER"
    LEAVE_UNCONSIDERED = "LEAVE_UNCONSIDERED"
    RATE = "RATE"
    REOPEN = "REOPEN"
    CLOSE = "CLOSE"


# Statuses in which the agency still owes an answer: the deadline sweeps watch these.
OPEN_STATUSES: frozenset[AppealStatus] = frozenset(
    {AppealStatus.REGISTERED, AppealStatus.ASSIGNED, AppealStatus.REOPENED}
)
FINAL_STATUSES: frozenset[AppealStatus] = frozenset({AppealStatus.CLOSED, AppealStatus.LEFT_UNCONSIDERED})

ALLOWED: Mapping[Action, frozenset[AppealStatus]] = {
    Action.ASSIGN: OPEN_STATUSES,
    # A reopened appeal stays with the agency that answered it: its supervisors' matter.
    Action.FORWARD: frozenset({AppealStatus.REGISTERED, AppealStatus.ASSIGNED}),
    Action.EXTEND: OPEN_STATUSES,
    Action.ANSWER: frozenset({AppealStatus.ASSIGNED, AppealStatus.REOPENED}),
    Action.LEAVE_UNCONSIDERED: frozenset({AppealStatus.REGISTERED, AppealStatus.ASSIGNED}),
    Action.RATE: frozenset({AppealStatus.ANSWERED}),
    Action.REOPEN: frozenset({AppealStatus.ANSWERED}),
    Action.CLOSE: frozenset({AppealStatus.ANSWERED}),
}

# How an action reads in a message: "An appeal in status X cannot be <verb>".
_VERBS: Mapping[Action, str] = {
    Action.ASSIGN: "assigned",
    Action.FORWARD: "forwarded",
    Action.EXTEND: "extended",
    Action.ANSWER: "answered",
    Action.LEAVE_UNCONSIDERED: "left unconsidered",
    Action.RATE: "rated",
    Action.REOPEN: "reopened",
    Action.CLOSE: "closed",
}

_HINTS: Mapping[AppealStatus, str] = {
    AppealStatus.REGISTERED: "assign it to an executor first",
    AppealStatus.ASSIGNED: "it is being worked on; it has no answer yet",
    AppealStatus.ANSWERED: "it has been answered; the citizen may rate it or reopen it",
    AppealStatus.REOPENED: "it was reopened and is with the agency's supervisors",
    AppealStatus.CLOSED: "it is closed",
    AppealStatus.LEFT_UNCONSIDERED: "it was left unconsidered; that is final",
}


def refused(message: str, reason: str, **metadata: str) -> FailedPrecondition:
    return FailedPrecondition(message=message, reason=reason, metadata=metadata)


def ensure_allowed(action: Action, status: AppealStatus) -> None:
    """APPEAL_STATE_CONFLICT unless `action` may be taken on an appeal in `status`."""
    if status in ALLOWED[action]:
        return
    raise refused(
        f"An appeal in status {status} cannot be {_VERBS[action]}: {_HINTS[status]}.",
        "APPEAL_STATE_CONFLICT",
        status=str(status),
        action=str(action),
    )


# Where an action leaves the appeal; the actions not listed leave its status as it is (EXTEND,
# and RATE but when the citizen is satisfied).
TARGETS: Mapping[Action, AppealStatus] = {
    Action.ASSIGN: AppealStatus.ASSIGNED,
    # At the receiving agency, which assigns its own executor.
    Action.FORWARD: AppealStatus.REGISTERED,
    Action.ANSWER: AppealStatus.ANSWERED,
    Action.LEAVE_UNCONSIDERED: AppealStatus.LEFT_UNCONSIDERED,
    Action.REOPEN: AppealStatus.REOPENED,
    Action.CLOSE: AppealStatus.CLOSED,
}


def status_after(action: Action, status: AppealStatus, rating: Rating | None = None) -> AppealStatus:
    """The status an allowed action leaves the appeal in."""
    ensure_allowed(action, status)
    if action is Action.RATE and rating is Rating.SATISFIED:
        return AppealStatus.CLOSED
    return TARGETS.get(action, status)


# --- The rules an action checks beyond the status ----------------------------------------------


def ensure_forward_window(received: date, today: date, holidays: Collection[date]) -> None:
    """Art. 7.10: forwarded within 3 working days of the receipt, the 3rd included."""
    if may_forward(received, today, holidays):
        return
    last = forward_deadline(received, holidays)
    raise refused(
        f"An appeal is forwarded within 3 working days of its receipt; the last day was {last.isoformat()}. "
        "The agency must answer it now.",
        "FORWARD_WINDOW_PASSED",
        received=received.isoformat(),
        last_day=last.isoformat(),
    )


def ensure_before_due(due_at: datetime, now: datetime) -> None:
    """The time to answer is extended while it runs, not after it has run out."""
    if now < due_at:
        return
    raise refused(
        "The time to answer has run out; the appeal is overdue and must be answered now.",
        "DEADLINE_PASSED",
        due_time=due_at.isoformat(),
    )


def ensure_other_agency(current: str, target: str) -> None:
    if current == target:
        raise refused("The appeal is with this agency already.", "SAME_AGENCY", agency_code=current)


def extended(clock: Clock, kind: ExtensionKind, working_days: int) -> Clock:
    """The clock after an extension: additional study once (30 working days from the receipt
    instead of 15), and the one extension once (1 to 30 working days, checked when read)."""
    if kind is ExtensionKind.STUDY:
        if clock.study:
            raise refused(
                "The appeal has had its additional study already: 30 working days is the most.",
                "STUDY_ALREADY_GRANTED",
            )
        return Clock(clock.received, study=True, extension_working_days=clock.extension_working_days)
    if clock.extension_working_days:
        raise refused(
            "The time to answer may be extended once; it was extended by "
            f"{clock.extension_working_days} working days already.",
            "EXTENSION_ALREADY_GRANTED",
            working_days=str(clock.extension_working_days),
        )
    if not 1 <= working_days <= MAX_EXTENSION_WORKING_DAYS:
        raise ValueError(f"an extension is 1 to {MAX_EXTENSION_WORKING_DAYS} working days")
    return Clock(clock.received, study=clock.study, extension_working_days=working_days)


@dataclass(frozen=True)
class EarlierAnswer:
    """An earlier appeal the officer names under the repeat rule, as the database has it."""

    number: str
    citizen_fin: str
    category_code: str
    status: AppealStatus
    # The Baku date of its answer; None when it was never answered.
    answered: date | None


def ensure_repeat_rule(
    citizen_fin: str, category_code: str, earlier: Sequence[EarlierAnswer], today: date
) -> None:
    """Art. 8.1.4: the same citizen received at least 3 reasoned answers on the same matter
    (the same category) within one year. Only answers that count are counted; the officer
    judges that the new appeal brings no new information."""
    counted = [
        e.answered
        for e in earlier
        if e.answered is not None and e.citizen_fin == citizen_fin and e.category_code == category_code
    ]
    found = reasoned_answers_within_a_year(counted, today)
    if found >= REPEAT_ANSWERS:
        return
    raise refused(
        f"The repeat rule needs {REPEAT_ANSWERS} reasoned answers to this citizen in this category "
        f"within the last year; the appeals named give {found}.",
        "REPEAT_RULE_NOT_MET",
        answers_found=str(found),
        answers_needed=str(REPEAT_ANSWERS),
    )


def ensure_unrated(rating: Rating | None) -> None:
    if rating is not None:
        raise refused(f"The answer was rated {rating.lower()} already.", "ANSWER_ALREADY_RATED")


def ensure_may_reopen(rating: Rating | None, reopened_before: bool, answered: date, today: date) -> None:
    """The citizen reopens once, an answer they rated unsatisfactory, within 30 days of it."""
    if rating is not Rating.UNSATISFIED:
        raise refused(
            "Rate the answer as unsatisfactory first (RateAnswer); only such an answer is reopened.",
            "ANSWER_NOT_RATED_UNSATISFIED",
        )
    if reopened_before:
        raise refused("The appeal was reopened once already.", "ALREADY_REOPENED")
    ensure_reopen_window(answered, today)


def ensure_reopen_window(answered: date, today: date) -> None:
    """Within 30 days of the answer; after them the appeal closes by itself (the sweep), and a
    citizen who tries is told why rather than that it is closed."""
    if not may_reopen(answered, today):
        raise refused(
            f"An appeal is reopened within {REOPEN_WINDOW_DAYS} days of its answer "
            f"({answered.isoformat()}); write a new appeal instead.",
            "REOPEN_WINDOW_PASSED",
            answered=answered.isoformat(),
        )
