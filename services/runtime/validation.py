"""Collecting field violations, so that every bad field of a request is reported at once."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from google.protobuf.descriptor import Descriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from services.runtime.errors import FieldViolation, InvalidArgument
from services.runtime.field_behavior import missing_required

# What a citizen reads above the per-field messages.
INVALID_TEXT = {
    "az": "Məlumatların bəziləri düzgün deyil. Qeyd olunan sahələri düzəldib yenidən göndərin.",
    "en": "Some details are not right. Correct the marked fields and send again.",
    "ru": "Некоторые данные указаны неверно. Исправьте отмеченные поля и отправьте снова.",
}


class Violations:
    """Accumulates violations; `raise_if_any()` turns them into one INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str, reason: str = "") -> None:
        self.items.append(FieldViolation(field=field, description=description, reason=reason))

    def check(self, ok: bool, field: str, description: str, reason: str = "") -> bool:
        """Records a violation unless `ok`; returns `ok` so that dependent checks can be skipped."""
        if not ok:
            self.add(field, description, reason)
        return ok

    def require(self, request: Message) -> None:
        """A REQUIRED violation for each field the contract marks REQUIRED (field_behavior) that
        `request` leaves out, unless the service's own checks have already said something of that
        field. Call it last, before `raise_if_any`: what the contract requires is then reported
        the same way by every service, and as the OpenAPI document and clients read it."""
        for path in missing_required(request):
            if not self.has(path):
                self.add(path, "Required.", "REQUIRED")

    def has(self, field: str) -> bool:
        return any(v.field == field for v in self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(
        self, message: str = "The request has invalid fields; see the field violations."
    ) -> None:
        if self.items:
            raise InvalidArgument(
                message=message,
                reason="INVALID_ARGUMENT",
                violations=list(self.items),
                localized=INVALID_TEXT,
            )


def check_request_id(violations: Violations, value: str, field: str = "request_id") -> None:
    """Every mutating request carries a client-chosen UUID (AIP-155)."""
    if not value:
        violations.add(field, "Required: a UUID chosen by the client, the same on every retry.", "REQUIRED")
        return
    try:
        canonical = str(uuid.UUID(value)) == value
    except ValueError:
        canonical = False
    # One spelling only (lowercase, hyphenated), so that one id never names two requests.
    if not canonical:
        violations.add(
            field,
            "Must be a UUID in lowercase hyphenated form, e.g. 3f0c1e9a-2b7d-4c1e-9a51-6f2d8e4b7c10.",
            "FORMAT",
        )


def update_paths(
    violations: Violations,
    mask: FieldMask,
    resource: Descriptor,
    updatable: Collection[str],
    field: str = "update_mask",
) -> frozenset[str] | None:
    """The fields of `resource` that an update changes (AIP-134): None for the whole resource
    (no mask, or "*"). A path naming a field that no update changes (an identifier, an
    output-only field) changes nothing; a path naming no field is a violation that names it."""
    paths = list(mask.paths)
    if not paths or paths == ["*"]:
        return None
    unknown = [path for path in paths if path not in resource.fields_by_name]
    changing = frozenset(path for path in paths if path in updatable)
    fields = ", ".join(updatable)
    if unknown:
        violations.add(
            field,
            f"Not fields of {resource.name}: {', '.join(unknown)}. An update changes {fields}.",
            "UNKNOWN_FIELD",
        )
    elif not changing:
        violations.add(field, f"Names no field an update changes; those are {fields}.", "NOTHING_TO_CHANGE")
    return changing
