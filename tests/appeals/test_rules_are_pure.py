"""Appeals' rule modules are pure: no database, no gRPC, no protobuf, so that every rule can be
read and tested on its own, and the servicer, casework and the flows are the only places with I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

APPEALS = Path(__file__).resolve().parents[2] / "services" / "appeals"
# (notices.py is no rule: it declares the kinds of CitizenNotice, as every service does.)
RULES = ("workflow", "deadlines", "catalogue", "content", "attachments", "similarity")
# What a rule may import beyond the standard library: other rules, and the runtime's error types,
# field-violation collector, auth code shapes, Baku time and working days.
ALLOWED = {
    *(f"services.appeals.{rule}" for rule in RULES),
    "services.runtime.errors",
    "services.runtime.validation",
    "services.runtime.auth",
    "services.runtime.baku_time",
    "services.runtime.workdays",
}


def imports_of(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("rule", RULES)
def test_rule_module_imports_nothing_that_does_io(rule: str) -> None:
    imported = imports_of(APPEALS / f"{rule}.py")
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)
    }
    assert outside == set()
