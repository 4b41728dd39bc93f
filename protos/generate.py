"""Regenerates the Python stubs in protos/python from the .proto files.

Run with `make protos`; `tests/contracts/test_generated_stubs.py` fails when the
committed stubs differ from what this script produces.

Besides the modules it writes `asan/descriptor_set.binpb`: our .proto files as a
FileDescriptorSet with their comments (source info), which the generated modules do not
carry. The gateway reads it to put the comments into its OpenAPI document.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTOS_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = PROTOS_DIR / "python"
ROOT_PACKAGE = "asan"
# Our files only (no --include_imports): google/* comes from its own packages.
DESCRIPTOR_SET = "descriptor_set.binpb"


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTOS_DIR)) for p in (PROTOS_DIR / ROOT_PACKAGE).rglob("*.proto"))


def include_paths() -> list[str]:
    """Our protos, then google/api and google/rpc from googleapis-common-protos, then protobuf's own.

    The googleapis-common-protos wheel ships the .proto sources beside its modules.
    """
    import google.api

    googleapis_root = Path(google.api.__path__[0]).parent.parent
    well_known = resources.files("grpc_tools") / "_proto"
    return [str(PROTOS_DIR), str(googleapis_root), str(well_known)]


def generate(out_dir: Path) -> None:
    (out_dir / ROOT_PACKAGE).mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        *(f"-I{path}" for path in include_paths()),
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        "--include_source_info",
        f"--descriptor_set_out={out_dir / ROOT_PACKAGE / DESCRIPTOR_SET}",
        *proto_files(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Explicit packages, so that mypy, setuptools and editable installs all agree.
    for directory in [
        out_dir / ROOT_PACKAGE,
        *(p for p in (out_dir / ROOT_PACKAGE).rglob("*") if p.is_dir()),
    ]:
        (directory / "__init__.py").touch()
    (out_dir / ROOT_PACKAGE / "py.typed").touch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=PACKAGE_DIR, help="where to write (default: protos/python)"
    )
    args = parser.parse_args()
    if args.out.resolve() == PACKAGE_DIR:
        # Start clean so that stubs of deleted protos do not linger.
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            shutil.rmtree(PACKAGE_DIR / ROOT_PACKAGE, ignore_errors=True)
            shutil.copytree(Path(tmp) / ROOT_PACKAGE, PACKAGE_DIR / ROOT_PACKAGE)
    else:
        generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
