"""The committed stubs in protos/python/asan are exactly what protos/generate.py makes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from tests.contracts import PROTOS_DIR, STUBS_DIR, package_files, proto_sources

FIX = "run `make protos` and commit protos/python"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The asan package as the generator makes it now, from the .proto files in the tree."""
    out_dir = tmp_path_factory.mktemp("stubs") / "python"
    venv_bin = Path(sys.executable).parent  # not resolved: the venv's python is a symlink
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [sys.executable, str(PROTOS_DIR / "generate.py"), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"protos/generate.py failed:\n{result.stdout}\n{result.stderr}"
    return out_dir / STUBS_DIR.name


def differences(expected: Path, actual: Path) -> list[str]:
    """One line per file that `actual` lacks, has in excess, or holds with other bytes."""
    wanted, present = package_files(expected), package_files(actual)
    differing = {
        name for name in wanted & present if (expected / name).read_bytes() != (actual / name).read_bytes()
    }
    return [
        *(f"  missing:   {name}" for name in sorted(wanted - present)),
        *(f"  left over: {name}" for name in sorted(present - wanted)),
        *(f"  outdated:  {name}" for name in sorted(differing)),
    ]


def test_committed_stubs_are_exactly_what_the_generator_makes(fresh: Path) -> None:
    problems = differences(fresh, STUBS_DIR)
    assert not problems, f"protos/python/asan is out of date with the .proto files; {FIX}:\n" + "\n".join(
        problems
    )


def test_comparison_names_missing_left_over_and_edited_stubs(fresh: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "asan"
    shutil.copytree(fresh, tampered)
    module = min(tampered.rglob("*_pb2.py"))
    edited = module.relative_to(tampered).as_posix()
    removed = f"{edited}i"
    module.write_bytes(module.read_bytes() + b"# edited by hand\n")
    (tampered / removed).unlink()
    (tampered / "orphan_pb2.py").write_text("")

    assert differences(fresh, tampered) == [
        f"  missing:   {removed}",
        "  left over: orphan_pb2.py",
        f"  outdated:  {edited}",
    ]


def test_generator_marks_the_package_typed_with_a_stub_beside_every_module(fresh: Path) -> None:
    files = package_files(fresh)

    modules = {name for name in files if name.endswith(("_pb2.py", "_pb2_grpc.py"))}
    without_stub = sorted(name for name in modules if f"{name}i" not in files)
    assert modules, "the generator produced no modules"
    assert "py.typed" in files
    assert not without_stub, "modules without a .pyi type stub:\n" + "\n".join(without_stub)


def test_descriptor_set_holds_every_contract_file_with_its_comments(fresh: Path) -> None:
    """The gateway documents the API from it: every .proto of ours, comments included."""
    descriptors = descriptor_pb2.FileDescriptorSet.FromString((fresh / "descriptor_set.binpb").read_bytes())

    assert sorted(file.name for file in descriptors.file) == proto_sources(PROTOS_DIR)
    without_comments = [
        file.name
        for file in descriptors.file
        if not any(location.leading_comments.strip() for location in file.source_code_info.location)
    ]
    assert not without_comments, "files without comments in the descriptor set: " + ", ".join(
        without_comments
    )
