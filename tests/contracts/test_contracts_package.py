"""The stubs are one distribution, asan-contracts, that a developer outside the suite installs alone.

Slow: builds the wheel and installs it, with its dependencies from the package index,
into one fresh virtual environment (no site packages) shared by the module's tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.contracts import PROTOS_DIR, STUBS_DIR, package_files

# Builds and network installs take far longer than a unit test's default timeout.
pytestmark = pytest.mark.timeout(900)

DISTRIBUTION = "asan-contracts"


def run(command: list[str | Path], cwd: Path) -> str:
    """Runs outside this checkout's environment, so nothing from /work/main leaks in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Installed:
    python: Path
    venv: Path
    workdir: Path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a clean copy of protos/ (building in place would leave build/ behind)."""
    workdir = tmp_path_factory.mktemp("wheel")
    source = workdir / "protos"
    shutil.copytree(PROTOS_DIR, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", source, "-w", workdir / "dist"],
        cwd=workdir,
    )
    (built,) = (workdir / "dist").glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    workdir = tmp_path_factory.mktemp("outside")
    venv = workdir / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=workdir)
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", wheel], cwd=workdir)
    return Installed(python, venv, workdir)


def wheel_metadata(wheel: Path) -> tuple[set[str], list[Requirement]]:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = (name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    return names, [Requirement(line) for line in metadata.get_all("Requires-Dist", [])]


def test_wheel_holds_the_committed_stubs_and_nothing_else(wheel: Path) -> None:
    names, _ = wheel_metadata(wheel)
    packaged = {name.removeprefix("asan/") for name in names if name.startswith("asan/")}
    strays = sorted(name for name in names if not name.startswith("asan/") and ".dist-info/" not in name)

    assert not strays, "files outside the asan package in the wheel:\n" + "\n".join(strays)
    missing = sorted(package_files(STUBS_DIR) - packaged)
    assert not missing, "committed stubs missing from the wheel:\n" + "\n".join(missing)


def test_stubs_work_in_a_fresh_environment(installed: Installed) -> None:
    script = """
import json
import asan
from asan.common.v1 import money_pb2
from asan.payment.v1 import payment_service_pb2_grpc

fee = money_pb2.Money(minor_units=1250, currency_code="AZN")
echoed = money_pb2.Money.FromString(fee.SerializeToString())
print(json.dumps({
    "package": asan.__file__,
    "money": [echoed.minor_units, echoed.currency_code],
    "stub": payment_service_pb2_grpc.PaymentServiceStub.__name__,
}))
"""
    report = json.loads(run([installed.python, "-c", script], cwd=installed.workdir))

    assert Path(report["package"]).is_relative_to(installed.venv), "asan was imported from outside the venv"
    assert report["money"] == [1250, "AZN"]
    assert report["stub"] == "PaymentServiceStub"


def test_installed_package_is_typed_with_a_stub_beside_every_module(installed: Installed) -> None:
    where = run(
        [installed.python, "-c", "import pathlib, asan; print(pathlib.Path(asan.__file__).parent)"],
        cwd=installed.workdir,
    )
    files = package_files(Path(where.strip()))
    modules = {name for name in files if name.endswith(("_pb2.py", "_pb2_grpc.py"))}

    assert "py.typed" in files, "py.typed is not installed: type checkers would ignore the stubs"
    assert {"common/v1/money_pb2.pyi", "payment/v1/payment_service_pb2_grpc.pyi"} <= files
    without_stub = sorted(name for name in modules if f"{name}i" not in files)
    assert not without_stub, "installed modules without a .pyi stub:\n" + "\n".join(without_stub)


def generated_requirement_floors() -> dict[str, Version]:
    """The oldest runtimes the committed gencode accepts: it refuses to import on older ones."""
    protobuf = grpcio = Version("0")
    for path in STUBS_DIR.rglob("*.py"):
        text = path.read_text()
        if found := re.search(r"^# Protobuf Python Version: (\S+)$", text, re.MULTILINE):
            protobuf = max(protobuf, Version(found[1]))
        if found := re.search(r"^GRPC_GENERATED_VERSION = '([^']+)'$", text, re.MULTILINE):
            grpcio = max(grpcio, Version(found[1]))
    return {"protobuf": protobuf, "grpcio": grpcio}


def lowest_allowed(requirement: Requirement) -> Version | None:
    floors = [
        Version(spec.version) for spec in requirement.specifier if spec.operator in {">=", "==", "~=", ">"}
    ]
    return max(floors, default=None)


def test_declared_dependencies_exclude_runtimes_older_than_the_generated_code(wheel: Path) -> None:
    _, requirements = wheel_metadata(wheel)
    declared = {requirement.name.lower(): requirement for requirement in requirements}
    too_low = []
    for name, needed in generated_requirement_floors().items():
        floor = lowest_allowed(declared[name]) if name in declared else None
        if floor is None or floor < needed:
            too_low.append(f"{name}: the wheel accepts {declared.get(name)}, the stubs need >={needed}")
    assert not too_low, "\n".join(too_low)
