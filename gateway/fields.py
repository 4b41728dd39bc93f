"""What the contracts say of a field beyond its type: `google.api.field_behavior` (AIP-203:
REQUIRED, OUTPUT_ONLY, IMMUTABLE) and `google.api.field_info` (AIP-202: a UUID4 format).

The OpenAPI document reads them (required lists, readOnly, `format: uuid`), as the services'
validation follows them, so that a generated client knows what it must send.
"""

from __future__ import annotations

from typing import Any

from google.api import field_behavior_pb2, field_info_pb2
from google.protobuf.descriptor import FieldDescriptor

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
