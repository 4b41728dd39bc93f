"""Payment's rule modules are pure: no database, no gRPC, no protobuf, so that every rule can
be read and tested on its own, and the servicer and the flows are the only places with I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PAYMENT = Path(__file__).resolve().parents[2] / "services" / "payment"
RULES = ("states", "money", "catalogue", "cards", "refund_rules", "bill_rules", "payout_states")
# What a rule may import beyond the standard library: other rules, the card check digit, and
# the runtime's error types, field-violation collector and identifier shapes.
ALLOWED = {
    *(f"services.payment.{rule}" for rule in RULES),
    "stdnum",
    "services.runtime.errors",
    "services.runtime.validation",
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
    imported = imports_of(PAYMENT / f"{rule}.py")
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)
    }
    assert outside == set()
