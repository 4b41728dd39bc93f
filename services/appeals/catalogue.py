"""The catalogue admins keep: agencies that receive appeals, and categories (Open311 service
definitions) with the typed attributes a submission fills. A change is checked here, every bad
field at once; an agency's or category's change is a new version.

Pure: no I/O, no protobuf. Attribute definitions are kept as JSON in the category's row
(`definitions_to_json`, `definitions_from_json`): they are read and written whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.runtime.auth import CODE_PATTERN
from services.runtime.validation import Violations


class AttributeType(StrEnum):
    STRING = "STRING"
    NUMBER = "NUMBER"
    DATETIME = "DATETIME"
    TEXT = "TEXT"
    SINGLE_VALUE_LIST = "SINGLE_VALUE_LIST"
    MULTI_VALUE_LIST = "MULTI_VALUE_LIST"


LIST_TYPES = frozenset({AttributeType.SINGLE_VALUE_LIST, AttributeType.MULTI_VALUE_LIST})

CATEGORY_CODE = re.compile(r"[a-z0-9][a-z0-9._-]{2,59}")
ATTRIBUTE_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")
CHOICE_KEY = re.compile(r"[a-z0-9_-]{1,40}")
MAX_NAME_LENGTH = 200
MAX_ATTRIBUTES = 20
MAX_CHOICES = 50
MAX_SUPERVISORS = 20
MAX_SUBJECT_LENGTH = 255


@dataclass(frozen=True)
class Names:
    """A name in Azerbaijani (always), English and Russian (empty when not translated)."""

    az: str
    en: str = ""
    ru: str = ""

    def in_locale(self, locale: str) -> str:
        return {"en": self.en, "ru": self.ru}.get(locale, "") or self.az


@dataclass(frozen=True)
class Choice:
    key: str
    name: Names


@dataclass(frozen=True)
class AttributeDefinition:
    code: str
    name: Names
    type: AttributeType
    required: bool
    choices: tuple[Choice, ...] = ()


@dataclass(frozen=True)
class Agency:
    code: str
    name: Names
    supervisors: tuple[str, ...]


@dataclass(frozen=True)
class Category:
    code: str
    name: Names
    agency_code: str
    attributes: tuple[AttributeDefinition, ...]
    active: bool


# --- Checking a change ------------------------------------------------------------------------


def check_names(names: Names, violations: Violations, path: str) -> None:
    violations.check(bool(names.az.strip()), f"{path}.az", "Required: the name in Azerbaijani.", "REQUIRED")
    for locale in ("az", "en", "ru"):
        violations.check(
            len(getattr(names, locale)) <= MAX_NAME_LENGTH,
            f"{path}.{locale}",
            f"At most {MAX_NAME_LENGTH} characters.",
            "TOO_LONG",
        )


def check_agency_code(code: str, violations: Violations, path: str) -> None:
    violations.check(
        CODE_PATTERN.fullmatch(code) is not None,
        path,
        "Must be the agency's code as its officers' tokens carry it: 2 to 20 capital letters, digits "
        "or underscores, e.g. DMX.",
        "FORMAT",
    )


def check_category_code(code: str, violations: Violations, path: str) -> None:
    violations.check(
        CATEGORY_CODE.fullmatch(code) is not None,
        path,
        "Must be 3 to 60 lowercase letters, digits, '.', '_' or '-', e.g. migration.residence_permit.",
        "FORMAT",
    )


def check_agency(agency: Agency, violations: Violations, prefix: str = "agency") -> None:
    check_agency_code(agency.code, violations, f"{prefix}.code")
    check_names(agency.name, violations, f"{prefix}.name")
    violations.check(
        len(agency.supervisors) <= MAX_SUPERVISORS,
        f"{prefix}.supervisor_subjects",
        f"At most {MAX_SUPERVISORS} supervisors.",
        "TOO_MANY",
    )
    for index, subject in enumerate(agency.supervisors[:MAX_SUPERVISORS]):
        violations.check(
            0 < len(subject) <= MAX_SUBJECT_LENGTH and subject.strip() == subject,
            f"{prefix}.supervisor_subjects[{index}]",
            f"Must be an officer's subject: 1 to {MAX_SUBJECT_LENGTH} characters without surrounding spaces.",
            "FORMAT",
        )
    violations.check(
        len(set(agency.supervisors)) == len(agency.supervisors),
        f"{prefix}.supervisor_subjects",
        "Each supervisor once.",
        "DUPLICATE",
    )


def check_category(category: Category, violations: Violations, prefix: str = "category") -> None:
    """Everything a category must be that needs no database (its agency must exist: checked there)."""
    check_category_code(category.code, violations, f"{prefix}.code")
    check_names(category.name, violations, f"{prefix}.name")
    check_agency_code(category.agency_code, violations, f"{prefix}.agency_code")
    violations.check(
        len(category.attributes) <= MAX_ATTRIBUTES,
        f"{prefix}.attributes",
        f"At most {MAX_ATTRIBUTES} attributes.",
        "TOO_MANY",
    )
    seen: set[str] = set()
    for index, attribute in enumerate(category.attributes[:MAX_ATTRIBUTES]):
        path = f"{prefix}.attributes[{index}]"
        _check_attribute(attribute, violations, path)
        violations.check(attribute.code not in seen, f"{path}.code", "Each code once.", "DUPLICATE")
        seen.add(attribute.code)


def _check_attribute(attribute: AttributeDefinition, violations: Violations, path: str) -> None:
    violations.check(
        ATTRIBUTE_CODE.fullmatch(attribute.code) is not None,
        f"{path}.code",
        "Must be 1 to 40 lowercase letters, digits or '_', starting with a letter.",
        "FORMAT",
    )
    check_names(attribute.name, violations, f"{path}.name")
    if attribute.type not in LIST_TYPES:
        violations.check(
            not attribute.choices, f"{path}.choices", "Only a list attribute has choices.", "NOT_ALLOWED"
        )
        return
    violations.check(
        1 <= len(attribute.choices) <= MAX_CHOICES,
        f"{path}.choices",
        f"A list attribute needs 1 to {MAX_CHOICES} choices.",
        "OUT_OF_RANGE",
    )
    keys: set[str] = set()
    for index, choice in enumerate(attribute.choices[:MAX_CHOICES]):
        violations.check(
            CHOICE_KEY.fullmatch(choice.key) is not None and choice.key not in keys,
            f"{path}.choices[{index}].key",
            "Must be 1 to 40 lowercase letters, digits, '_' or '-', each key once.",
            "FORMAT",
        )
        keys.add(choice.key)
        check_names(choice.name, violations, f"{path}.choices[{index}].name")


# --- Kept as JSON --------------------------------------------------------------------------------


def _names_json(names: Names) -> dict[str, str]:
    return {"az": names.az, "en": names.en, "ru": names.ru}


def _names(data: dict[str, Any]) -> Names:
    return Names(data["az"], data.get("en", ""), data.get("ru", ""))


def definitions_to_json(attributes: Sequence[AttributeDefinition]) -> str:
    return json.dumps(
        [
            {
                "code": a.code,
                "name": _names_json(a.name),
                "type": a.type.value,
                "required": a.required,
                "choices": [{"key": c.key, "name": _names_json(c.name)} for c in a.choices],
            }
            for a in attributes
        ],
        ensure_ascii=False,
    )


def definitions_from_json(text: str) -> tuple[AttributeDefinition, ...]:
    return tuple(
        AttributeDefinition(
            code=item["code"],
            name=_names(item["name"]),
            type=AttributeType(item["type"]),
            required=bool(item["required"]),
            choices=tuple(Choice(c["key"], _names(c["name"])) for c in item.get("choices", [])),
        )
        for item in json.loads(text)
    )
