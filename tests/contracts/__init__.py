"""Tests of the protobuf contracts in protos/: stubs, package, API design and buf.

The helpers here are shared by those tests: where the contracts live, which files the
stub package holds, and how to compile the .proto sources into descriptors with their
comments (source info), the way protoc sees them.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTOS_DIR = REPO_ROOT / "protos"
STUBS_DIR = PROTOS_DIR / "python" / "asan"
BUF = REPO_ROOT / "node_modules" / ".bin" / "buf"
CONTRACTS_ROOT = "asan"

# Importing it registers the google.api.http option, so that parsed descriptors carry it as
# a known extension. By name, since googleapis-common-protos ships .pyi files but no
# py.typed marker, and mypy would refuse a plain import.
GOOGLE_API_ANNOTATIONS = importlib.import_module("google.api.annotations_pb2")


def package_files(root: Path) -> set[str]:
    """Files below `root`, relative to it; bytecode caches left by imports are not part of it."""
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def proto_sources(proto_root: Path) -> list[str]:
    """Our .proto files below `proto_root`, as protoc names them (asan/<domain>/v1/x.proto)."""
    return sorted(
        p.relative_to(proto_root).as_posix() for p in (proto_root / CONTRACTS_ROOT).rglob("*.proto")
    )


def include_paths(proto_root: Path) -> list[str]:
    """Same order as protos/generate.py: ours, google/api + google/rpc from their wheel, protobuf's."""
    googleapis_root = Path(str(GOOGLE_API_ANNOTATIONS.__file__)).parents[2]
    well_known = resources.files("grpc_tools") / "_proto"
    return [str(proto_root), str(googleapis_root), str(well_known)]


def compile_protos(proto_root: Path, out_dir: Path) -> descriptor_pb2.FileDescriptorSet:
    """Every asan/**/*.proto below `proto_root` and its imports, with comments and spans."""
    descriptor_set = out_dir / "contracts.binpb"
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        *(f"-I{path}" for path in include_paths(proto_root)),
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={descriptor_set}",
        *proto_sources(proto_root),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"protoc could not compile the contracts:\n{result.stderr}"
    return descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())


def contract_files(
    descriptors: descriptor_pb2.FileDescriptorSet,
) -> list[descriptor_pb2.FileDescriptorProto]:
    """Our own files in a descriptor set, without google/* imports."""
    return [file for file in descriptors.file if file.name.startswith(f"{CONTRACTS_ROOT}/")]
