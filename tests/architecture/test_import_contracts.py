"""The import contracts cover every service, and hold."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _service_packages() -> set[str]:
    return {
        f"services.{path.parent.name}"
        for path in (ROOT / "services").glob("*/__init__.py")
        if path.parent.name != "runtime"
    }


def test_every_service_is_in_the_independence_contract() -> None:
    independence = next(c for c in _contracts() if c["type"] == "independence")
    listed = set(independence["modules"])  # type: ignore[call-overload]
    missing = _service_packages() - listed
    assert not missing, f"add {sorted(missing)} to the independence contract in pyproject.toml"
    assert "gateway" in listed or not (ROOT / "gateway" / "__init__.py").exists()


def test_the_runtime_may_import_no_service() -> None:
    forbidden = next(c for c in _contracts() if c.get("source_modules") == ["services.runtime"])
    missing = _service_packages() - set(forbidden["forbidden_modules"])  # type: ignore[call-overload]
    assert not missing, f"add {sorted(missing)} to the runtime's forbidden modules in pyproject.toml"


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
