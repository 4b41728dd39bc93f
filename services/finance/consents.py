"""The consent's rules: its terms when a bank asks, its state machine, and whether a fetch is
within it. Pure: no I/O, no protobuf.

    PENDING --approve--> ACTIVE --pause--> PAUSED --resume--> ACTIVE
    PENDING --reject--> REJECTED
    ACTIVE, PAUSED --revoke--> REVOKED
    PENDING, ACTIVE, PAUSED --expire--> EXPIRED     (at the expiry instant, not after it)
    ACTIVE --use--> USED                            (a one-time consent's fetch)

An action the status does not allow is refused with the reason CONSENT_<status>, the same
reasons a refused fetch gives, so that a bank reads one vocabulary.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

ONE_TIME_LONGEST = timedelta(days=10)
PERIODIC_LONGEST = timedelta(days=365)
# How far back a bank may ask for data: five years of a loan file.
DATA_PERIOD_LONGEST_DAYS = 5 * 366


class Status(enum.StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    USED = "USED"


class Kind(enum.StrEnum):
    ONE_TIME = "ONE_TIME"
    PERIODIC = "PERIODIC"


class Frequency(enum.StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"

    @property
    def interval(self) -> timedelta:
        return {"DAILY": timedelta(days=1), "WEEKLY": timedelta(days=7), "MONTHLY": timedelta(days=30)}[
            self.value
        ]


class Action(enum.StrEnum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    REVOKE = "REVOKE"
    EXPIRE = "EXPIRE"
    USE = "USE"


TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.PENDING, Action.APPROVE): Status.ACTIVE,
    (Status.PENDING, Action.REJECT): Status.REJECTED,
    (Status.PENDING, Action.EXPIRE): Status.EXPIRED,
    (Status.ACTIVE, Action.PAUSE): Status.PAUSED,
    (Status.ACTIVE, Action.REVOKE): Status.REVOKED,
    (Status.ACTIVE, Action.EXPIRE): Status.EXPIRED,
    (Status.ACTIVE, Action.USE): Status.USED,
    (Status.PAUSED, Action.RESUME): Status.ACTIVE,
    (Status.PAUSED, Action.REVOKE): Status.REVOKED,
    (Status.PAUSED, Action.EXPIRE): Status.EXPIRED,
}

# Statuses that time can still end.
EXPIRABLE = frozenset({Status.PENDING, Status.ACTIVE, Status.PAUSED})


class Refusal(enum.Enum):
    """How a refused action or fetch reaches the caller: the state forbids it, or the consent
    never covered it."""

    PRECONDITION = "precondition"
    PERMISSION = "permission"


@dataclass(frozen=True)
class ConsentRefused(Exception):
    """An action or a fetch outside the consent; `reason` is the stable UPPER_SNAKE code."""

    reason: str
    message: str
    refusal: Refusal = Refusal.PRECONDITION
    metadata: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return self.message


_STATUS_WORDS = {
    Status.PENDING: "is waiting for the citizen's answer",
    Status.ACTIVE: "is already active",
    Status.REJECTED: "was rejected by the citizen",
    Status.PAUSED: "is paused by the citizen",
    Status.REVOKED: "was revoked by the citizen",
    Status.EXPIRED: "has expired",
    Status.USED: "was one-time and has been used",
}


def effective_status(status: Status, expire_at: datetime, now: datetime) -> Status:
    """The status at `now`: one that time has ended reads EXPIRED before the sweeper writes it."""
    if status in EXPIRABLE and now >= expire_at:
        return Status.EXPIRED
    return status


def next_status(current: Status, action: Action) -> Status:
    """The status `action` leads to; ConsentRefused (CONSENT_<current>) if it is not allowed."""
    after = TRANSITIONS.get((current, action))
    if after is None:
        raise ConsentRefused(
            reason=f"CONSENT_{current.value}",
            message=f"The consent {_STATUS_WORDS[current]}: it cannot be {_past(action)} now.",
            metadata=(("status", current.value), ("action", action.value)),
        )
    return after


def _past(action: Action) -> str:
    return {
        Action.APPROVE: "approved",
        Action.REJECT: "rejected",
        Action.PAUSE: "paused",
        Action.RESUME: "resumed",
        Action.REVOKE: "revoked",
        Action.EXPIRE: "expired",
        Action.USE: "used",
    }[action]


@dataclass(frozen=True)
class Terms:
    """What a bank asks for."""

    fin: str
    purpose: str
    scopes: tuple[str, ...]
    period_start: date
    period_end: date
    kind: Kind
    frequency: Frequency | None
    expire_at: datetime


def terms_problems(terms: Terms, now: datetime, today: date) -> list[tuple[str, str]]:
    """(field, what to fix) for every term that breaks the rules; empty when they hold."""
    problems: list[tuple[str, str]] = []
    if terms.period_start > terms.period_end:
        problems.append(("consent.data_period", "The start date must not be after the end date."))
    if terms.period_end > today:
        problems.append(("consent.data_period.end_date", "Must not be after today (Asia/Baku)."))
    if (terms.period_end - terms.period_start).days >= DATA_PERIOD_LONGEST_DAYS:
        problems.append(("consent.data_period", "At most five years of data may be asked for."))
    if terms.expire_at <= now:
        problems.append(("consent.expire_time", "Must be in the future."))
    elif terms.kind is Kind.ONE_TIME and terms.expire_at - now > ONE_TIME_LONGEST:
        problems.append(("consent.expire_time", "A one-time consent lasts at most 10 days."))
    elif terms.kind is Kind.PERIODIC and terms.expire_at - now > PERIODIC_LONGEST:
        problems.append(("consent.expire_time", "A periodic consent lasts at most one year."))
    if terms.kind is Kind.PERIODIC and terms.frequency is None:
        problems.append(("consent.frequency", "Required for a periodic consent: how often the bank fetches."))
    if terms.kind is Kind.ONE_TIME and terms.frequency is not None:
        problems.append(("consent.frequency", "Must be unset for a one-time consent (one fetch)."))
    return problems


@dataclass(frozen=True)
class ConsentState:
    """What the fetch rules read of a stored consent."""

    status: Status
    kind: Kind
    frequency: Frequency | None
    scopes: tuple[str, ...]
    period_start: date
    period_end: date
    expire_at: datetime
    last_fetch_at: datetime | None


@dataclass(frozen=True)
class FetchAsk:
    """What a bank asks to fetch: scopes and days, already defaulted to the consent's."""

    scopes: tuple[str, ...]
    period_start: date
    period_end: date


def check_fetch(consent: ConsentState, ask: FetchAsk, now: datetime) -> None:
    """Returns if the fetch is within the consent at `now`; ConsentRefused says why not.

    The state first (a paused consent refuses any fetch), then what the consent covers, then
    how often."""
    status = effective_status(consent.status, consent.expire_at, now)
    if status is not Status.ACTIVE:
        raise ConsentRefused(
            reason=f"CONSENT_{status.value}",
            message=f"The consent {_STATUS_WORDS[status]}: no data may be fetched under it.",
            metadata=(("status", status.value),),
        )
    outside = [scope for scope in ask.scopes if scope not in consent.scopes]
    if outside:
        raise ConsentRefused(
            reason="SCOPE_NOT_CONSENTED",
            message=f"The citizen did not consent to {', '.join(outside)}; ask for a new consent.",
            refusal=Refusal.PERMISSION,
            metadata=(("scopes", ",".join(outside)),),
        )
    if ask.period_start < consent.period_start or ask.period_end > consent.period_end:
        raise ConsentRefused(
            reason="RANGE_NOT_CONSENTED",
            message=(
                f"The consent covers {consent.period_start.isoformat()} to "
                f"{consent.period_end.isoformat()} only."
            ),
            refusal=Refusal.PERMISSION,
            metadata=(
                ("consented_start", consent.period_start.isoformat()),
                ("consented_end", consent.period_end.isoformat()),
            ),
        )
    next_allowed = next_fetch_at(consent)
    if next_allowed is not None and now < next_allowed:
        raise ConsentRefused(
            reason="FREQUENCY_EXCEEDED",
            message=f"The consent allows the next fetch from {next_allowed.isoformat()}.",
            metadata=(("next_fetch_time", next_allowed.isoformat()),),
        )


def next_fetch_at(consent: ConsentState) -> datetime | None:
    """The first instant a periodic consent allows another fetch (the frequency's interval after
    the last one, that instant included); None when nothing limits it."""
    if consent.kind is Kind.PERIODIC and consent.frequency and consent.last_fetch_at:
        return consent.last_fetch_at + consent.frequency.interval
    return None


def after_fetch(kind: Kind) -> Status:
    """The status a successful fetch leaves: a one-time consent is used up."""
    return next_status(Status.ACTIVE, Action.USE) if kind is Kind.ONE_TIME else Status.ACTIVE


def distinct(values: Collection[str]) -> bool:
    return len(set(values)) == len(values)
