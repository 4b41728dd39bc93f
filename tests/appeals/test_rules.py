"""The rules of ASAN müraciət at their boundaries, on the Asia/Baku working-day calendar with
the public holidays of 2026 (Novruz and Ramazan on 20-24 March, Qurban on 27-28 May, ...):
the 15 and 30 working days, the forward window, the extensions, the repeat rule, the reopening
window, the state machine, and what an appeal must say."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.appeals.catalogue import (
    AttributeDefinition,
    AttributeType,
    Category,
    Choice,
    Names,
    check_category,
    definitions_from_json,
    definitions_to_json,
)
from services.appeals.content import Location, check_attributes, check_location, check_text
from services.appeals.deadlines import Clock, due_time, is_due_soon, may_forward, may_reopen
from services.appeals.similarity import normalised, similar_appeals
from services.appeals.workflow import (
    Action,
    AppealStatus,
    EarlierAnswer,
    ExtensionKind,
    Rating,
    ensure_before_due,
    ensure_forward_window,
    ensure_may_reopen,
    ensure_repeat_rule,
    extended,
    status_after,
)
from services.runtime.errors import FailedPrecondition
from services.runtime.holidays_az import public_holidays
from services.runtime.validation import Violations

HOLIDAYS = set(public_holidays([2026, 2027]))
MONDAY_BEFORE_NOVRUZ = date(2026, 3, 16)
THURSDAY_BEFORE_NOVRUZ = date(2026, 3, 19)


def refusal(call: object, *args: object) -> FailedPrecondition:
    with pytest.raises(FailedPrecondition) as raised:
        call(*args)  # type: ignore[operator]
    return raised.value


# --- The time to answer ------------------------------------------------------------------------


def test_an_appeal_is_due_on_the_15th_working_day_after_its_receipt_skipping_weekends_and_novruz() -> None:
    # 17-19 March (3), Novruz 20-24 March and the weekend off, 25 March - 9 April (12 more).
    assert Clock(MONDAY_BEFORE_NOVRUZ).due_date(HOLIDAYS) == date(2026, 4, 9)
    # Without the holidays it would have been three working days earlier.
    assert Clock(MONDAY_BEFORE_NOVRUZ).due_date(set()) == date(2026, 4, 6)


def test_additional_study_makes_it_30_working_days_from_the_receipt() -> None:
    assert Clock(MONDAY_BEFORE_NOVRUZ, study=True).due_date(HOLIDAYS) == date(2026, 4, 30)
    assert Clock(MONDAY_BEFORE_NOVRUZ, study=True).term_working_days == 30


def test_the_one_extension_adds_its_working_days_across_qurban_bayrami() -> None:
    clock = Clock(MONDAY_BEFORE_NOVRUZ, study=True, extension_working_days=30)
    # 30 more working days after 30 April, with 27-28 May and 15 June off.
    assert clock.due_date(HOLIDAYS) == date(2026, 6, 16)
    assert clock.term_working_days == 60


def test_an_appeal_received_on_a_friday_counts_from_monday() -> None:
    friday = date(2026, 4, 10)
    assert Clock(friday).due_date(HOLIDAYS) == date(2026, 5, 1)  # 13 April .. 1 May: three weeks


def test_an_appeal_is_due_until_the_end_of_its_last_day_in_baku() -> None:
    due = due_time(date(2026, 4, 9))
    assert due == datetime(2026, 4, 9, 20, 0, tzinfo=UTC)  # 24:00 in Baku (UTC+4)
    ensure_before_due(due, due - timedelta(seconds=1))
    assert refusal(ensure_before_due, due, due).reason == "DEADLINE_PASSED"


def test_an_appeal_is_due_soon_from_the_working_day_before_its_due_date() -> None:
    due = date(2026, 3, 25)  # the first working day after Novruz
    assert not is_due_soon(due, date(2026, 3, 18), HOLIDAYS)
    assert is_due_soon(due, date(2026, 3, 19), HOLIDAYS)  # the next working day is the 25th
    assert is_due_soon(due, due, HOLIDAYS)


# --- Forwarding ------------------------------------------------------------------------------


def test_an_appeal_is_forwarded_on_the_3rd_working_day_after_its_receipt_but_not_the_4th() -> None:
    # Received Thursday 19 March; 25, 26, 27 March are the three working days after Novruz.
    third, fourth = date(2026, 3, 27), date(2026, 3, 30)
    assert may_forward(THURSDAY_BEFORE_NOVRUZ, third, HOLIDAYS)
    ensure_forward_window(THURSDAY_BEFORE_NOVRUZ, third, HOLIDAYS)
    refused = refusal(ensure_forward_window, THURSDAY_BEFORE_NOVRUZ, fourth, HOLIDAYS)
    assert refused.reason == "FORWARD_WINDOW_PASSED"
    assert refused.metadata == {"received": "2026-03-19", "last_day": "2026-03-27"}
    assert "2026-03-27" in refused.message


def test_the_forward_window_is_open_over_the_weekend_before_its_last_day() -> None:
    assert may_forward(THURSDAY_BEFORE_NOVRUZ, date(2026, 3, 22), HOLIDAYS)  # a Sunday in Novruz


# --- Extensions ---------------------------------------------------------------------------------


def test_additional_study_is_granted_once_not_twice() -> None:
    once = extended(Clock(MONDAY_BEFORE_NOVRUZ), ExtensionKind.STUDY, 0)
    assert once.study and once.term_working_days == 30
    assert refusal(extended, once, ExtensionKind.STUDY, 0).reason == "STUDY_ALREADY_GRANTED"


def test_the_extension_for_information_is_granted_once_not_twice() -> None:
    once = extended(Clock(MONDAY_BEFORE_NOVRUZ), ExtensionKind.INFORMATION_REQUEST, 30)
    assert once.term_working_days == 45
    twice = refusal(extended, once, ExtensionKind.INFORMATION_REQUEST, 5)
    assert (twice.reason, twice.metadata) == ("EXTENSION_ALREADY_GRANTED", {"working_days": "30"})


def test_study_and_the_extension_add_up_each_once() -> None:
    clock = extended(Clock(MONDAY_BEFORE_NOVRUZ), ExtensionKind.INFORMATION_REQUEST, 10)
    clock = extended(clock, ExtensionKind.STUDY, 0)
    assert clock.term_working_days == 40


def test_an_extension_beyond_30_working_days_is_not_a_rule_to_apply() -> None:
    with pytest.raises(ValueError, match="1 to 30"):
        extended(Clock(MONDAY_BEFORE_NOVRUZ), ExtensionKind.INFORMATION_REQUEST, 31)


# --- The repeat rule -------------------------------------------------------------------------------

TODAY = date(2026, 11, 30)


def answers(*days: date, fin: str = "5ZK3T9P", category: str = "roads.damage") -> list[EarlierAnswer]:
    return [
        EarlierAnswer(f"MR-2026-00000{n}", fin, category, AppealStatus.CLOSED, day)
        for n, day in enumerate(days)
    ]


def test_the_repeat_rule_is_met_by_3_reasoned_answers_within_a_year() -> None:
    ensure_repeat_rule("5ZK3T9P", "roads.damage", answers(date(2026, 1, 10), date(2026, 5, 4), TODAY), TODAY)


def test_the_repeat_rule_is_not_met_by_2() -> None:
    refused = refusal(ensure_repeat_rule, "5ZK3T9P", "roads.damage", answers(date(2026, 1, 10), TODAY), TODAY)
    assert refused.reason == "REPEAT_RULE_NOT_MET"
    assert refused.metadata == {"answers_found": "2", "answers_needed": "3"}


def test_the_repeat_rule_counts_the_year_up_to_today_from_the_same_day_a_year_ago() -> None:
    a_year_ago, a_day_more = date(2025, 11, 30), date(2025, 11, 29)
    ensure_repeat_rule("5ZK3T9P", "roads.damage", answers(a_year_ago, date(2026, 5, 4), TODAY), TODAY)
    refusal(
        ensure_repeat_rule, "5ZK3T9P", "roads.damage", answers(a_day_more, date(2026, 5, 4), TODAY), TODAY
    )


def test_the_repeat_rule_counts_neither_unanswered_appeals_nor_another_citizen_s_or_matter_s() -> None:
    mixed = [
        *answers(date(2026, 2, 1)),
        *answers(date(2026, 3, 1), fin="7QW2E4R"),
        *answers(date(2026, 4, 1), category="traffic.fine_dispute"),
        EarlierAnswer("MR-2026-000009", "5ZK3T9P", "roads.damage", AppealStatus.ASSIGNED, None),
        *answers(date(2026, 6, 1)),
    ]
    refused = refusal(ensure_repeat_rule, "5ZK3T9P", "roads.damage", mixed, TODAY)
    assert refused.metadata["answers_found"] == "2"


# --- Reopening ---------------------------------------------------------------------------------

ANSWERED = date(2026, 4, 1)


def test_the_citizen_reopens_on_the_30th_day_after_the_answer_but_not_the_31st() -> None:
    day_30, day_31 = ANSWERED + timedelta(days=30), ANSWERED + timedelta(days=31)
    assert may_reopen(ANSWERED, day_30)
    ensure_may_reopen(Rating.UNSATISFIED, False, ANSWERED, day_30)
    refused = refusal(ensure_may_reopen, Rating.UNSATISFIED, False, ANSWERED, day_31)
    assert (refused.reason, refused.metadata) == ("REOPEN_WINDOW_PASSED", {"answered": "2026-04-01"})


def test_only_an_answer_rated_unsatisfactory_is_reopened_and_only_once() -> None:
    for rating in (None, Rating.SATISFIED):
        assert (
            refusal(ensure_may_reopen, rating, False, ANSWERED, ANSWERED).reason
            == "ANSWER_NOT_RATED_UNSATISFIED"
        )
    assert (
        refusal(ensure_may_reopen, Rating.UNSATISFIED, True, ANSWERED, ANSWERED).reason == "ALREADY_REOPENED"
    )


# --- The state machine --------------------------------------------------------------------------


def test_the_happy_path_goes_registered_assigned_answered_closed() -> None:
    status = AppealStatus.REGISTERED
    for action, expected in [
        (Action.ASSIGN, AppealStatus.ASSIGNED),
        (Action.EXTEND, AppealStatus.ASSIGNED),
        (Action.ANSWER, AppealStatus.ANSWERED),
        (Action.CLOSE, AppealStatus.CLOSED),
    ]:
        status = status_after(action, status)
        assert status is expected


def test_a_satisfied_rating_closes_and_an_unsatisfied_one_leaves_it_answered() -> None:
    assert status_after(Action.RATE, AppealStatus.ANSWERED, Rating.SATISFIED) is AppealStatus.CLOSED
    assert status_after(Action.RATE, AppealStatus.ANSWERED, Rating.UNSATISFIED) is AppealStatus.ANSWERED


def test_a_reopened_appeal_is_assigned_and_answered_again_but_not_forwarded() -> None:
    assert status_after(Action.REOPEN, AppealStatus.ANSWERED) is AppealStatus.REOPENED
    assert status_after(Action.ANSWER, AppealStatus.REOPENED) is AppealStatus.ANSWERED
    assert status_after(Action.ASSIGN, AppealStatus.REOPENED) is AppealStatus.ASSIGNED
    assert refusal(status_after, Action.FORWARD, AppealStatus.REOPENED).reason == "APPEAL_STATE_CONFLICT"


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (Action.ANSWER, AppealStatus.REGISTERED),
        (Action.RATE, AppealStatus.ASSIGNED),
        (Action.REOPEN, AppealStatus.REGISTERED),
        (Action.CLOSE, AppealStatus.ASSIGNED),
        (Action.FORWARD, AppealStatus.ANSWERED),
        (Action.LEAVE_UNCONSIDERED, AppealStatus.ANSWERED),
        *((action, AppealStatus.CLOSED) for action in Action),
        *((action, AppealStatus.LEFT_UNCONSIDERED) for action in Action),
    ],
)
def test_an_illegal_transition_is_a_failed_precondition_that_names_it(
    action: Action, status: AppealStatus
) -> None:
    refused = refusal(status_after, action, status)
    assert refused.reason == "APPEAL_STATE_CONFLICT"
    assert refused.metadata == {"status": status.value, "action": action.value}
    assert status.value in refused.message


def test_an_answer_to_an_unassigned_appeal_says_to_assign_it_first() -> None:
    assert (
        "assign it to an executor first"
        in refusal(status_after, Action.ANSWER, AppealStatus.REGISTERED).message
    )


# --- What an appeal says -----------------------------------------------------------------------

ROADS = (
    AttributeDefinition(
        "damage_kind",
        Names("Zədənin növü"),
        AttributeType.SINGLE_VALUE_LIST,
        True,
        (Choice("pothole", Names("Çuxur")), Choice("missing_sign", Names("Nişan yoxdur"))),
    ),
    AttributeDefinition("lanes", Names("Zolaqlar"), AttributeType.NUMBER, False),
    AttributeDefinition("seen_at", Names("Vaxt"), AttributeType.DATETIME, False),
    AttributeDefinition(
        "signs",
        Names("Nişanlar"),
        AttributeType.MULTI_VALUE_LIST,
        False,
        (Choice("stop", Names("Dayan")), Choice("yield", Names("Yol ver"))),
    ),
    AttributeDefinition("plate", Names("Nömrə"), AttributeType.STRING, False),
)


def checked(given: list[tuple[str, list[str]]]) -> tuple[dict[str, list[str]], dict[str, str]]:
    violations = Violations()
    answers = check_attributes(ROADS, given, violations, "appeal.attributes")
    return answers, {v.field: v.reason for v in violations.items}


def test_attribute_values_of_every_type_are_taken() -> None:
    answers, problems = checked(
        [
            ("damage_kind", ["pothole"]),
            ("lanes", ["-3.75"]),
            ("seen_at", ["2026-03-02T10:00:00+04:00"]),
            ("signs", ["stop", "yield"]),
            ("plate", ["10-AA-123"]),
        ]
    )
    assert problems == {}
    assert answers["signs"] == ["stop", "yield"]


def test_attribute_values_are_checked_against_their_types_each_violation_at_its_index() -> None:
    _, problems = checked(
        [
            ("damage_kind", ["flood"]),
            ("lanes", ["two"]),
            ("seen_at", ["2026-03-02 10:00"]),
            ("signs", ["stop", "stop"]),
            ("plate", ["x" * 256]),
            ("colour", ["red"]),
        ]
    )
    assert problems == {
        "appeal.attributes[0].values": "UNKNOWN_CHOICE",
        "appeal.attributes[1].values": "FORMAT",
        "appeal.attributes[2].values": "FORMAT",
        "appeal.attributes[3].values": "COUNT",
        "appeal.attributes[4].values": "TOO_LONG",
        "appeal.attributes[5].code": "UNKNOWN_ATTRIBUTE",
    }


def test_a_required_attribute_must_be_answered_and_an_attribute_once() -> None:
    _, problems = checked([("lanes", ["2"]), ("lanes", ["3"])])
    assert problems == {"appeal.attributes": "REQUIRED", "appeal.attributes[1].code": "DUPLICATE"}


def test_a_single_value_attribute_takes_exactly_one_value() -> None:
    _, problems = checked([("damage_kind", ["pothole", "missing_sign"])])
    assert problems == {"appeal.attributes[0].values": "COUNT"}


def test_the_text_is_required_and_at_most_4000_characters() -> None:
    for text, reason in [("   ", "REQUIRED"), ("a" * 4001, "TOO_LONG"), ("a" * 4000, None)]:
        violations = Violations()
        check_text(text, violations, "appeal.text")
        assert [v.reason for v in violations.items] == ([reason] if reason else [])


@pytest.mark.parametrize(
    ("latitude", "longitude", "inside"),
    [
        (40_409_300, 49_867_100, True),  # Baku
        (39_208_900, 45_412_200, True),  # Nakhchivan city
        (40_179_200, 44_499_100, False),  # Yerevan: west of the box
        (38_380_000, 48_850_000, False),  # just south of Astara
        (40_409_300, 50_650_000, False),  # in the Caspian, east of the box
    ],
)
def test_a_location_must_be_inside_azerbaijan(latitude: int, longitude: int, inside: bool) -> None:
    violations = Violations()
    check_location(Location(latitude, longitude, ""), violations, "appeal.location")
    assert (not violations) is inside
    assert all(v.reason == "OUTSIDE_AZERBAIJAN" for v in violations.items)


def test_a_category_s_definition_is_checked_and_kept_as_json_unchanged() -> None:
    category = Category("roads.damage", Names("Yol"), "AAYDA", ROADS, True)
    violations = Violations()
    check_category(category, violations)
    assert not violations
    assert definitions_from_json(definitions_to_json(ROADS)) == ROADS


def test_a_bad_category_definition_names_every_bad_field() -> None:
    bad = Category(
        "Roads",
        Names(""),
        "aayda",
        (
            AttributeDefinition("kind", Names("Növ"), AttributeType.SINGLE_VALUE_LIST, True),
            AttributeDefinition(
                "kind", Names("Növ"), AttributeType.STRING, False, (Choice("x", Names("X")),)
            ),
        ),
        True,
    )
    violations = Violations()
    check_category(bad, violations)
    assert {v.field: v.reason for v in violations.items} == {
        "category.code": "FORMAT",
        "category.name.az": "REQUIRED",
        "category.agency_code": "FORMAT",
        "category.attributes[0].choices": "OUT_OF_RANGE",
        "category.attributes[1].choices": "NOT_ALLOWED",
        "category.attributes[1].code": "DUPLICATE",
    }


# --- Repeat detection --------------------------------------------------------------------------


def test_texts_are_compared_normalised() -> None:
    assert normalised("  Yol  BƏRBAD vəziyyətdədir!! ") == "yol bərbad vəziyyətdədir"


def test_a_reworded_repeat_is_found_and_another_complaint_is_not() -> None:
    first = "Binəqədi rayonu, Xocəsən qəsəbəsində yolun üstündə böyük çuxur var, maşınlar zədələnir."
    reworded = "Xocəsən qəsəbəsində (Binəqədi rayonu) yolun üstündə böyük çuxur var; maşınlar zədələnir!"
    other = "Nərimanov rayonunda svetofor iki həftədir işləmir, piyadalar keçə bilmir."
    found = similar_appeals(
        reworded, [("MR-2026-000003", normalised(other)), ("MR-2026-000001", normalised(first))]
    )
    assert found == ["MR-2026-000001"]
