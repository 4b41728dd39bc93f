"""Page tokens: opaque, bound to their filters, and for lists ordered by an instant, the
(instant, id) of the previous page's last row, refused when altered."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from asan.common.v1 import paging_pb2
from services.runtime.baku_time import BAKU
from services.runtime.paging import (
    decode_keyset,
    decode_page_token,
    encode_keyset,
    encode_page_token,
    filter_fingerprint,
    page_size,
)
from services.runtime.validation import Violations

FILTERS = filter_fingerprint("payments", "SUCCEEDED")
LAST_TIME = datetime(2026, 3, 20, 8, 30, 15, 123456, tzinfo=UTC)


def _token(last_sort_key: str, last_id: str = "p-1", fingerprint: str = FILTERS) -> str:
    cursor = paging_pb2.PageCursor(
        last_sort_key=last_sort_key, last_id=last_id, filter_fingerprint=fingerprint
    )
    return base64.urlsafe_b64encode(cursor.SerializeToString()).decode().rstrip("=")


def _reasons(violations: Violations) -> list[tuple[str, str]]:
    return [(v.field, v.reason) for v in violations.items]


def test_a_keyset_token_resumes_after_the_last_row_to_the_microsecond() -> None:
    violations = Violations()
    token = encode_keyset(LAST_TIME, "p-1", FILTERS)

    assert decode_keyset(violations, token, FILTERS) == (LAST_TIME, "p-1")
    assert not violations


def test_an_instant_in_another_zone_is_the_same_instant() -> None:
    resumed = decode_keyset(Violations(), encode_keyset(LAST_TIME.astimezone(BAKU), "p-1", FILTERS), FILTERS)

    assert resumed is not None
    assert resumed[0] == LAST_TIME
    assert resumed[0].utcoffset() == timedelta(hours=4)


def test_no_token_is_the_first_page() -> None:
    violations = Violations()

    assert decode_keyset(violations, "", FILTERS) is None
    assert not violations


def test_a_naive_instant_is_not_made_into_a_token() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_keyset(LAST_TIME.replace(tzinfo=None), "p-1", FILTERS)


@pytest.mark.parametrize(
    ("case", "token", "reason"),
    [
        ("garbage", "not a token!", "FORMAT"),
        ("made for other filters", encode_keyset(LAST_TIME, "p-1", filter_fingerprint("other")), ""),
        ("instant altered by the client", _token("yesterday"), ""),
        ("instant without a zone", _token("2026-03-20T08:30:15"), ""),
        ("a code-ordered token", encode_page_token("", "DEU", FILTERS), ""),
    ],
)
def test_a_token_that_is_not_ours_is_a_violation_on_page_token(case: str, token: str, reason: str) -> None:
    violations = Violations()

    assert decode_keyset(violations, token, FILTERS) is None, case
    assert _reasons(violations) == [("page_token", reason)], case


def test_a_code_ordered_token_round_trips_and_is_bound_to_its_filters() -> None:
    violations = Violations()
    token = encode_page_token("", "DEU", FILTERS)

    cursor = decode_page_token(violations, token, FILTERS)
    assert cursor is not None and cursor.last_id == "DEU"
    assert decode_page_token(violations, token, filter_fingerprint("other")) is None
    assert _reasons(violations) == [("page_token", "")]


def test_the_page_size_defaults_and_is_bounded() -> None:
    violations = Violations()

    assert page_size(violations, 0, default=50) == 50
    assert page_size(violations, 500, default=50) == 500
    assert not violations
    page_size(violations, 501, default=50)
    page_size(violations, -1, default=50)
    assert [v.field for v in violations.items] == ["page_size", "page_size"]


def test_fingerprints_differ_by_filter_and_are_stable() -> None:
    assert filter_fingerprint("payments", "SUCCEEDED") == FILTERS
    assert filter_fingerprint("payments", "FAILED") != FILTERS
    assert filter_fingerprint("payments", None) != filter_fingerprint("payments", "None")


def test_an_instant_in_a_fixed_offset_resumes_as_that_instant() -> None:
    offset = LAST_TIME.astimezone(timezone(timedelta(hours=-5)))

    assert decode_keyset(Violations(), encode_keyset(offset, "p-1", FILTERS), FILTERS) == (LAST_TIME, "p-1")
