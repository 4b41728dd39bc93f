"""Finance's rule modules are pure: no database, no gRPC, no protobuf, so that the consent's
state machine, the catalogue, the chain and the signed documents can be read and tested on
their own, and the servicer and the flows are the only places with I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

FINANCE = Path(__file__).resolve().parents[2] / "services" / "finance"
RULES = ("consents", "catalogue", "chain", "documents")
# What a rule may import beyond the standard library: other rules, Baku's calendar, and the
# canonical form and signer of services.runtime.signing (signing is computation; the signer
# is handed in, loaded by the service).
ALLOWED = {
    *(f"services.finance.{rule}" for rule in RULES),
    "services.runtime.baku_time",
    "services.runtime.signing",
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
    imported = imports_of(FINANCE / f"{rule}.py")
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)
    }
    assert outside == set()
