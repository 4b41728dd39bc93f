"""Page tokens (AIP-158): opaque to clients, bound to the filter they were made for."""

from __future__ import annotations

import base64
import binascii
import hashlib

from google.protobuf.message import DecodeError

from asan.common.v1 import paging_pb2
from services.runtime.validation import Violations

MAX_PAGE_SIZE = 500


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
        violations.add(
            "page_token", "Not a page token of this method; pass back next_page_token unchanged.", "FORMAT"
        )
        return None
    if cursor.filter_fingerprint != fingerprint:
        violations.add(
            "page_token", "Was made for other filters; repeat the first call with the new filters."
        )
        return None
    return cursor
