"""The consent's state machine at every edge, and the fetch rules at their boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.finance.chain import GENESIS, ChainedEntry, verify_chain
from services.finance.consents import (
    TRANSITIONS,
    Action,
    ConsentRefused,
    ConsentState,
    FetchAsk,
    Frequency,
    Kind,
    Refusal,
    Status,
    Terms,
    after_fetch,
    check_fetch,
    effective_status,
    next_status,
    terms_problems,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TODAY = date(2026, 11, 29)


def consent(**changes: object) -> ConsentState:
    values: dict[str, object] = {
        "status": Status.ACTIVE,
        "kind": Kind.PERIODIC,
        "frequency": Frequency.DAILY,
        "scopes": ("INCOME", "EMPLOYMENT"),
        "period_start": date(2026, 1, 1),
        "period_end": date(2026, 10, 31),
        "expire_at": NOW + timedelta(days=30),
        "last_fetch_at": None,
    }
    values.update(changes)
    return ConsentState(**values)  # type: ignore[arg-type]


def ask(
    scopes: tuple[str, ...] = ("INCOME",), start: date = date(2026, 1, 1), end: date = date(2026, 10, 31)
) -> FetchAsk:
    return FetchAsk(scopes, start, end)


def refusal_of(state: ConsentState, wanted: FetchAsk, now: datetime = NOW) -> ConsentRefused:
    with pytest.raises(ConsentRefused) as refused:
        check_fetch(state, wanted, now)
    return refused.value


@pytest.mark.parametrize(
    ("before", "action", "after"),
    [
        (Status.PENDING, Action.APPROVE, Status.ACTIVE),
        (Status.PENDING, Action.REJECT, Status.REJECTED),
        (Status.PENDING, Action.EXPIRE, Status.EXPIRED),
        (Status.ACTIVE, Action.PAUSE, Status.PAUSED),
        (Status.ACTIVE, Action.REVOKE, Status.REVOKED),
        (Status.ACTIVE, Action.EXPIRE, Status.EXPIRED),
        (Status.ACTIVE, Action.USE, Status.USED),
        (Status.PAUSED, Action.RESUME, Status.ACTIVE),
        (Status.PAUSED, Action.REVOKE, Status.REVOKED),
        (Status.PAUSED, Action.EXPIRE, Status.EXPIRED),
    ],
)
def test_every_allowed_edge_leads_where_the_issue_says(before: Status, action: Action, after: Status) -> None:
    assert next_status(before, action) is after


@pytest.mark.parametrize(
    ("before", "action"),
    [(s, a) for s in Status for a in Action if (s, a) not in TRANSITIONS],
)
def test_every_other_edge_is_refused_naming_the_current_status(before: Status, action: Action) -> None:
    with pytest.raises(ConsentRefused) as refused:
        next_status(before, action)
    assert refused.value.reason == f"CONSENT_{before.value}"
    assert refused.value.refusal is Refusal.PRECONDITION
    assert dict(refused.value.metadata) == {"status": before.value, "action": action.value}


def test_approving_twice_is_refused_as_already_active() -> None:
    active = next_status(Status.PENDING, Action.APPROVE)
    with pytest.raises(ConsentRefused) as refused:
        next_status(active, Action.APPROVE)
    assert refused.value.reason == "CONSENT_ACTIVE"


def test_final_statuses_allow_nothing() -> None:
    for final in (Status.REJECTED, Status.REVOKED, Status.EXPIRED, Status.USED):
        assert not [action for (status, action) in TRANSITIONS if status is final]


def test_a_consent_expires_at_its_expiry_instant_not_a_moment_later() -> None:
    expire_at = NOW
    assert effective_status(Status.ACTIVE, expire_at, NOW - timedelta(microseconds=1)) is Status.ACTIVE
    assert effective_status(Status.ACTIVE, expire_at, NOW) is Status.EXPIRED
    assert effective_status(Status.PAUSED, expire_at, NOW) is Status.EXPIRED
    assert effective_status(Status.REVOKED, expire_at, NOW) is Status.REVOKED


def test_a_fetch_on_the_expiry_second_is_refused_and_the_one_before_it_is_not() -> None:
    state = consent(expire_at=NOW + timedelta(seconds=1))
    check_fetch(state, ask(), NOW)
    assert refusal_of(state, ask(), NOW + timedelta(seconds=1)).reason == "CONSENT_EXPIRED"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (Status.PENDING, "CONSENT_PENDING"),
        (Status.PAUSED, "CONSENT_PAUSED"),
        (Status.REVOKED, "CONSENT_REVOKED"),
        (Status.REJECTED, "CONSENT_REJECTED"),
        (Status.USED, "CONSENT_USED"),
        (Status.EXPIRED, "CONSENT_EXPIRED"),
    ],
)
def test_a_fetch_outside_an_active_consent_names_its_status(status: Status, reason: str) -> None:
    refused = refusal_of(consent(status=status), ask())
    assert (refused.reason, refused.refusal) == (reason, Refusal.PRECONDITION)


def test_pause_then_resume_then_fetch_is_allowed() -> None:
    status = next_status(next_status(Status.ACTIVE, Action.PAUSE), Action.RESUME)
    check_fetch(consent(status=status), ask(), NOW)


def test_a_scope_not_consented_is_permission_denied_naming_it() -> None:
    refused = refusal_of(consent(), ask(("INCOME", "PROPERTY")))
    assert (refused.reason, refused.refusal) == ("SCOPE_NOT_CONSENTED", Refusal.PERMISSION)
    assert dict(refused.metadata) == {"scopes": "PROPERTY"}


def test_days_outside_the_consented_period_are_permission_denied() -> None:
    assert refusal_of(consent(), ask(start=date(2025, 12, 31))).reason == "RANGE_NOT_CONSENTED"
    assert refusal_of(consent(), ask(end=date(2026, 11, 1))).reason == "RANGE_NOT_CONSENTED"
    check_fetch(consent(), ask(start=date(2026, 3, 1), end=date(2026, 3, 31)), NOW)


def test_a_daily_consent_allows_the_next_fetch_exactly_a_day_later_not_a_second_sooner() -> None:
    state = consent(last_fetch_at=NOW - timedelta(days=1))
    check_fetch(state, ask(), NOW)
    early = refusal_of(state, ask(), NOW - timedelta(seconds=1))
    assert early.reason == "FREQUENCY_EXCEEDED"
    assert dict(early.metadata) == {"next_fetch_time": NOW.isoformat()}


def test_a_one_time_consent_is_used_by_its_fetch_and_refuses_a_second() -> None:
    assert after_fetch(Kind.ONE_TIME) is Status.USED
    assert after_fetch(Kind.PERIODIC) is Status.ACTIVE
    refused = refusal_of(
        consent(status=after_fetch(Kind.ONE_TIME), kind=Kind.ONE_TIME, frequency=None), ask()
    )
    assert refused.reason == "CONSENT_USED"


def terms(**changes: object) -> Terms:
    values: dict[str, object] = {
        "fin": "SBX0001",
        "purpose": "CONSUMER_LOAN",
        "scopes": ("INCOME",),
        "period_start": date(2026, 1, 1),
        "period_end": date(2026, 10, 31),
        "kind": Kind.ONE_TIME,
        "frequency": None,
        "expire_at": NOW + timedelta(days=10),
    }
    values.update(changes)
    return Terms(**values)  # type: ignore[arg-type]


def test_a_one_time_consent_lasts_at_most_ten_days() -> None:
    assert terms_problems(terms(), NOW, TODAY) == []
    assert terms_problems(terms(expire_at=NOW + timedelta(days=10, seconds=1)), NOW, TODAY) == [
        ("consent.expire_time", "A one-time consent lasts at most 10 days.")
    ]


def test_a_periodic_consent_lasts_at_most_a_year_and_needs_a_frequency() -> None:
    periodic = terms(kind=Kind.PERIODIC, frequency=Frequency.WEEKLY, expire_at=NOW + timedelta(days=365))
    assert terms_problems(periodic, NOW, TODAY) == []
    fields = [
        f
        for f, _ in terms_problems(terms(kind=Kind.PERIODIC, expire_at=NOW + timedelta(days=366)), NOW, TODAY)
    ]
    assert fields == ["consent.expire_time", "consent.frequency"]


def test_data_from_the_future_or_a_reversed_period_is_refused() -> None:
    fields = [f for f, _ in terms_problems(terms(period_end=date(2026, 11, 30)), NOW, TODAY)]
    assert fields == ["consent.data_period.end_date"]
    fields = [
        f
        for f, _ in terms_problems(
            terms(period_start=date(2026, 11, 1), period_end=date(2026, 10, 1)), NOW, TODAY
        )
    ]
    assert fields == ["consent.data_period"]


def chain(count: int) -> list[ChainedEntry]:
    entries: list[ChainedEntry] = []
    previous = GENESIS
    for sequence in range(1, count + 1):
        entry = ChainedEntry(
            "SBX0001",
            sequence,
            NOW,
            "DATA_FETCHED",
            "KAPITALBANK",
            "MORTGAGE",
            "c",
            ("INCOME",),
            ("tax",),
            "r",
            "d",
            previous,
        )
        entry = ChainedEntry(**{**entry.__dict__, "entry_hash": entry.computed_hash()})
        entries.append(entry)
        previous = entry.entry_hash
    return entries


def test_a_chain_whose_entry_changed_breaks_at_that_entry() -> None:
    entries = chain(4)
    assert verify_chain(entries).first_broken is None
    entries[2] = ChainedEntry(**{**entries[2].__dict__, "institution_code": "PASHABANK"})
    assert verify_chain(entries).first_broken == 3


def test_a_chain_missing_its_last_entry_breaks_against_its_head() -> None:
    entries = chain(3)
    head = (3, entries[-1].entry_hash)
    assert verify_chain(entries[:2], head).first_broken == 3
