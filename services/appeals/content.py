"""What an appeal says, checked against its category: the text, the answers to the category's
attributes (by their types), the location (inside Azerbaijan) and the link to another service's
object. Every bad field is reported at once, with the request's field paths.

Pure: no I/O, no protobuf. Electronic appeals are written appeals (Art. 3.0.2): the text is
what is answered.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from services.appeals.attachments import CheckedAttachment
from services.appeals.catalogue import LIST_TYPES, AttributeDefinition, AttributeType
from services.runtime.validation import Violations

MAX_TEXT_LENGTH = 4000
MAX_STRING_LENGTH = 255
MAX_ADDRESS_LENGTH = 300
MAX_VALUES = 50
# RFC 3339 with a time zone, as Open311's datetime attributes are written.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
NUMBER = re.compile(r"-?\d{1,15}(\.\d{1,6})?")

# Azerbaijan's bounding box with Nakhchivan, in microdegrees (WGS 84), a little generous at the
# edges: what is checked is that the point is in the country, not on which side of a border post.
LATITUDE_RANGE = (38_390_000, 41_920_000)
LONGITUDE_RANGE = (44_760_000, 50_640_000)


class LinkedService(StrEnum):
    PAYMENT = "PAYMENT"


@dataclass(frozen=True)
class Location:
    latitude_e6: int
    longitude_e6: int
    address: str


@dataclass(frozen=True)
class LinkedObject:
    service: LinkedService
    object_id: str


@dataclass(frozen=True)
class AppealContent:
    """A new appeal as the citizen wrote it; a link left unspecified is None."""

    category_code: str
    text: str
    # (code, values) in the order given, so that a violation names the right index.
    attributes: Sequence[tuple[str, Sequence[str]]]
    location: Location | None
    linked_object: LinkedObject | None
    # Shown, without personal data, in the open Open311 view.
    publish: bool = False
    attachments: Sequence[CheckedAttachment] = ()


def check_text(text: str, violations: Violations, path: str) -> None:
    if not text.strip():
        violations.add(path, "Required: what the appeal is about.", "REQUIRED")
    elif len(text) > MAX_TEXT_LENGTH:
        violations.add(path, f"At most {MAX_TEXT_LENGTH} characters; it has {len(text)}.", "TOO_LONG")


def check_location(location: Location, violations: Violations, path: str) -> None:
    low, high = LATITUDE_RANGE
    violations.check(
        low <= location.latitude_e6 <= high,
        f"{path}.latitude_e6",
        f"Must be inside Azerbaijan: {low} to {high} microdegrees (38.39° to 41.92° north).",
        "OUTSIDE_AZERBAIJAN",
    )
    low, high = LONGITUDE_RANGE
    violations.check(
        low <= location.longitude_e6 <= high,
        f"{path}.longitude_e6",
        f"Must be inside Azerbaijan: {low} to {high} microdegrees (44.76° to 50.64° east).",
        "OUTSIDE_AZERBAIJAN",
    )
    violations.check(
        len(location.address) <= MAX_ADDRESS_LENGTH,
        f"{path}.address",
        f"At most {MAX_ADDRESS_LENGTH} characters.",
        "TOO_LONG",
    )


def check_linked_object(linked: LinkedObject, violations: Violations, path: str) -> None:
    """The shape of the id; whether the object exists and is the citizen's is the other service's
    to say."""
    if linked.service is LinkedService.PAYMENT:
        try:
            valid = str(uuid.UUID(linked.object_id)) == linked.object_id.lower()
        except ValueError:
            valid = False
        violations.check(
            valid, f"{path}.object_id", "Must be the payment id (a UUID) of one of your payments.", "FORMAT"
        )


def check_attributes(
    definitions: Sequence[AttributeDefinition],
    given: Sequence[tuple[str, Sequence[str]]],
    violations: Violations,
    path: str,
) -> dict[str, list[str]]:
    """The answers by attribute code, checked against the category's definitions: every
    required one given, no unknown or repeated code, each value of its type."""
    by_code: Mapping[str, AttributeDefinition] = {d.code: d for d in definitions}
    answers: dict[str, list[str]] = {}
    for index, (code, values) in enumerate(given):
        item = f"{path}[{index}]"
        definition = by_code.get(code)
        if definition is None:
            violations.add(
                f"{item}.code",
                f"The category has no attribute {code!r}; GetCategory lists its attributes.",
                "UNKNOWN_ATTRIBUTE",
            )
            continue
        if code in answers:
            violations.add(f"{item}.code", "Each attribute once.", "DUPLICATE")
            continue
        if _check_values(definition, values, violations, f"{item}.values"):
            answers[code] = list(values)
    for definition in definitions:
        if definition.required and definition.code not in answers and not _named(given, definition.code):
            violations.add(
                path,
                f"Required: the attribute {definition.code!r} ({definition.name.az}).",
                "REQUIRED",
            )
    return answers


def _named(given: Sequence[tuple[str, Sequence[str]]], code: str) -> bool:
    return any(given_code == code for given_code, _ in given)


def _check_values(
    definition: AttributeDefinition, values: Sequence[str], violations: Violations, path: str
) -> bool:
    kind = definition.type
    if kind is AttributeType.MULTI_VALUE_LIST:
        if not 1 <= len(values) <= MAX_VALUES or len(set(values)) != len(values):
            violations.add(path, f"One to {MAX_VALUES} keys of the attribute's choices, each once.", "COUNT")
            return False
    elif len(values) != 1:
        violations.add(path, "Exactly one value.", "COUNT")
        return False
    if kind in LIST_TYPES:
        keys = {choice.key for choice in definition.choices}
        unknown = ", ".join(value for value in values if value not in keys)
        return violations.check(
            not unknown,
            path,
            f"Not a choice of this attribute: {unknown}; the choices are {', '.join(sorted(keys))}.",
            "UNKNOWN_CHOICE",
        )
    return _check_single(kind, values[0], violations, path)


def _check_single(kind: AttributeType, value: str, violations: Violations, path: str) -> bool:
    if kind is AttributeType.NUMBER:
        return violations.check(
            _is_number(value), path, "Must be a decimal number, e.g. 12 or -3.75.", "FORMAT"
        )
    if kind is AttributeType.DATETIME:
        return violations.check(
            _is_instant(value),
            path,
            "Must be an RFC 3339 instant, e.g. 2026-03-02T10:00:00+04:00.",
            "FORMAT",
        )
    limit = MAX_TEXT_LENGTH if kind is AttributeType.TEXT else MAX_STRING_LENGTH
    if not value.strip():
        violations.add(path, "Must not be empty.", "REQUIRED")
        return False
    return violations.check(len(value) <= limit, path, f"At most {limit} characters.", "TOO_LONG")


def _is_number(value: str) -> bool:
    if NUMBER.fullmatch(value) is None:
        return False
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True


def _is_instant(value: str) -> bool:
    if RFC3339.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
