"""Agro's rule modules are pure: no database, no gRPC, no protobuf, so that every rule can be
read and tested on its own, and the servicer and the flows are the only places with I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

AGRO = Path(__file__).resolve().parents[2] / "services" / "agro"
RULES = ("subsidy", "windows", "conditions", "monitoring", "geometry", "accounts", "access", "numbers")
# What a rule may import beyond the standard library: other rules, the field's geometry and
# account-number libraries, the runtime's working days, principal and error types.
ALLOWED = {
    *(f"services.agro.{rule}" for rule in RULES),
    "shapely",
    "pyproj",
    "stdnum",
    "services.runtime.workdays",
    "services.runtime.auth",
    "services.runtime.errors",
    "services.runtime.identifiers",
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
    imported = imports_of(AGRO / f"{rule}.py")
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)
    }
    assert outside == set()
