"""The import contracts cover every service, present and future, and hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)},
    )


def test_the_independence_contract_names_services_by_wildcard() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    independence = next(c for c in contracts if c["type"] == "independence")
    assert set(independence["modules"]) == {"services.*", "gateway"}


def test_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The packages and the contracts, copied, to break on purpose."""
    for package in ("services", "gateway"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("services/payment/access.py", "services.visa.domain"),
        ("services/runtime/context.py", "services.payment.states"),
        ("gateway/config.py", "services.visa.domain"),
    ],
)
def test_a_service_reaching_into_another_breaks_the_contract(
    tree_copy: Path, importer: str, imported: str
) -> None:
    with (tree_copy / importer).open("a") as module:
        module.write(f"\nimport {imported}  # noqa\n")
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert f"-> {imported}" in result.stdout


def test_a_new_service_folder_is_covered_without_registration(tree_copy: Path) -> None:
    new = tree_copy / "services" / "appeals_probe"
    new.mkdir()
    (new / "__init__.py").write_text('"""A service made for this test."""\n')
    (new / "rules.py").write_text("import services.payment.states  # noqa\n")
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert "services.appeals_probe.rules -> services.payment.states" in result.stdout
