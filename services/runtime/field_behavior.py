"""What the contracts say of a field beyond its type: `google.api.field_behavior` (AIP-203:
REQUIRED, OUTPUT_ONLY, IMMUTABLE) and `google.api.field_info` (AIP-202: a UUID4 format).

The gateway's OpenAPI document reads them (required lists, readOnly, `format: uuid`), and the services'
validation reports what `missing_required` finds, so that a generated client knows what it must send.
"""

from __future__ import annotations

from typing import Any, cast

from google.api import field_behavior_pb2, field_info_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

# The extensions of FieldOptions (by value: the stubs type them loosely).
_BEHAVIOR: Any = field_behavior_pb2.field_behavior
_INFO: Any = field_info_pb2.field_info


def _behaviors(field: FieldDescriptor) -> set[int]:
    return set(field.GetOptions().Extensions[_BEHAVIOR])


def is_required(field: FieldDescriptor) -> bool:
    return field_behavior_pb2.REQUIRED in _behaviors(field)


def is_output_only(field: FieldDescriptor) -> bool:
    return field_behavior_pb2.OUTPUT_ONLY in _behaviors(field)


def is_immutable(field: FieldDescriptor) -> bool:
    return field_behavior_pb2.IMMUTABLE in _behaviors(field)


def is_uuid(field: FieldDescriptor) -> bool:
    options = field.GetOptions()
    return bool(
        options.HasExtension(_INFO) and options.Extensions[_INFO].format == field_info_pb2.FieldInfo.UUID4
    )


def _is_set(message: Message, field: FieldDescriptor) -> bool:
    if field.is_repeated:
        return len(getattr(message, field.name)) > 0
    if field.message_type is not None or field.has_presence:
        return message.HasField(field.name)
    return bool(getattr(message, field.name))


def _in_oneof(field: FieldDescriptor) -> bool:
    """A member of a real oneof: required as one of its group, which field_behavior cannot say."""
    oneof = field.containing_oneof
    return oneof is not None and not (len(oneof.fields) == 1 and oneof.name.startswith("_"))


def missing_required(message: Message, prefix: str = "") -> list[str]:
    """The paths ("payment.amount", "applicants[1].surname") of the fields the contract marks
    REQUIRED that `message` leaves unset, in the messages it holds too. A scalar at its default
    (0, "", the first enum value) counts as unset, as proto3 cannot tell them apart."""
    missing = []
    descriptor = cast(Descriptor, message.DESCRIPTOR)
    for field in descriptor.fields:
        if is_output_only(field) or _in_oneof(field):
            continue
        path = prefix + field.name
        if not _is_set(message, field):
            if is_required(field):
                missing.append(path)
            continue
        nested = field.message_type
        if nested is None or nested.GetOptions().map_entry:
            continue
        if field.is_repeated:
            for index, item in enumerate(getattr(message, field.name)):
                missing += missing_required(item, f"{path}[{index}].")
        else:
            missing += missing_required(getattr(message, field.name), f"{path}.")
    return missing
