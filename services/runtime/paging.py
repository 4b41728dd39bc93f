"""Page tokens (AIP-158): opaque to clients, bound to the filter they were made for.

A list ordered by a key and the row's id (keyset paging) resumes after the previous page's
last row: `encode_page_token`/`decode_page_token` for a text key (a code), `encode_keyset`/
`decode_keyset` for an instant (a creation or due time).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime

from google.protobuf.message import DecodeError

from asan.common.v1 import paging_pb2
from services.runtime.baku_time import require_aware
from services.runtime.validation import Violations

MAX_PAGE_SIZE = 500
NOT_OURS = "Not a page token of this method; pass back next_page_token unchanged."


def page_size(violations: Violations, value: int, default: int, maximum: int = MAX_PAGE_SIZE) -> int:
    """The page size to use: `default` for 0; an error outside 0..maximum."""
    violations.check(
        0 <= value <= maximum, "page_size", f"Must be between 0 and {maximum}; 0 means {default}."
    )
    return value or default


def filter_fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def encode_page_token(last_sort_key: str, last_id: str, fingerprint: str) -> str:
    cursor = paging_pb2.PageCursor(
        last_sort_key=last_sort_key, last_id=last_id, filter_fingerprint=fingerprint
    )
    return base64.urlsafe_b64encode(cursor.SerializeToString()).decode().rstrip("=")


def decode_page_token(violations: Violations, token: str, fingerprint: str) -> paging_pb2.PageCursor | None:
    """The cursor of `token`, None for the first page; a violation for a token that is not ours
    or was made for another filter."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = paging_pb2.PageCursor.FromString(raw)
    except (binascii.Error, ValueError, DecodeError):
        violations.add("page_token", NOT_OURS, "FORMAT")
        return None
    if cursor.filter_fingerprint != fingerprint:
        violations.add(
            "page_token", "Was made for other filters; repeat the first call with the new filters."
        )
        return None
    return cursor


def encode_keyset(last_time: datetime, last_id: str, fingerprint: str) -> str:
    """The token of the page after the row (`last_time`, `last_id`), in a list ordered by an
    instant and then the id."""
    return encode_page_token(require_aware(last_time).isoformat(), last_id, fingerprint)


def decode_keyset(violations: Violations, token: str, fingerprint: str) -> tuple[datetime, str] | None:
    """(instant, id) of the previous page's last row; None for the first page. A token that is
    not ours, made for other filters, or altered by the client (its instant unreadable) is a
    violation on page_token."""
    cursor = decode_page_token(violations, token, fingerprint)
    if cursor is None:
        return None
    try:
        last_time: datetime | None = datetime.fromisoformat(cursor.last_sort_key)
    except ValueError:
        last_time = None
    # A naive instant cannot be compared with the stored ones: not a token we made.
    if last_time is None or last_time.tzinfo is None:
        violations.add("page_token", NOT_OURS)
        return None
    return last_time, cursor.last_id
