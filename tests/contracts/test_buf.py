"""`buf lint` passes, and tools/buf_breaking.sh stops a change that breaks consumers.

The breaking check runs on a throw-away git repository holding a copy of the contracts:
one commit, then an edit of the work tree, exactly as a developer's change looks to
`make buf-breaking`. The field to edit is found from the compiled descriptors, so the
tests work whatever the contracts hold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from tests.contracts import BUF, PROTOS_DIR, REPO_ROOT, compile_protos, contract_files

pytestmark = pytest.mark.skipif(not BUF.exists(), reason=f"buf is not installed at {BUF}: run `make install`")

BREAKING_SCRIPT = REPO_ROOT / "tools" / "buf_breaking.sh"
BREAKING = 100  # buf's exit code for a breaking change
TAB_WIDTH = 8  # protoc counts a tab up to the next multiple of 8 in its column numbers

# Paths in descriptor.proto's source info: file.message_type[i].field[j].number
FILE_MESSAGE, MESSAGE_FIELD, FIELD_NUMBER = 4, 2, 3


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=Contract Test", "-c", "user.email=contracts@test.invalid"]
    subprocess.run(
        ["git", *identity, "-c", "commit.gpgsign=false", *args], cwd=repo, check=True, capture_output=True
    )


@pytest.fixture
def contracts_repo(tmp_path: Path) -> Path:
    """A git repository with the contracts committed and third_party/ beside them, ignored."""
    third_party = REPO_ROOT / "third_party" / "googleapis"
    assert third_party.is_dir(), (
        "third_party/googleapis is missing: run `make install` (tools/third_party.sh)"
    )
    repo = tmp_path / "repo"
    shutil.copytree(
        PROTOS_DIR, repo / "protos", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    )
    shutil.copy(REPO_ROOT / "buf.yaml", repo / "buf.yaml")
    shutil.copytree(third_party, repo / "third_party" / "googleapis")
    (repo / ".gitignore").write_text("third_party/\n")
    git(repo, "init", "--quiet")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", "contracts")
    return repo


@dataclass(frozen=True)
class Span:
    """A region of a .proto file as protoc reports it: 0-based lines, tab-expanded columns."""

    start_line: int
    start_column: int
    end_line: int
    end_column: int

    @classmethod
    def of(cls, file: descriptor_pb2.FileDescriptorProto, path: tuple[int, ...]) -> Span:
        location = next(loc for loc in file.source_code_info.location if tuple(loc.path) == path)
        span = list(location.span)
        if len(span) == 3:  # starts and ends on one line
            span.insert(2, span[0])
        return cls(*span)


@dataclass(frozen=True)
class FieldSite:
    """A plain field of a top-level message, where the tests edit a copied proto."""

    file: descriptor_pb2.FileDescriptorProto
    message: descriptor_pb2.DescriptorProto
    message_path: tuple[int, ...]
    field: descriptor_pb2.FieldDescriptorProto
    field_path: tuple[int, ...]

    @property
    def free_number(self) -> int:
        """A field number the message neither uses nor reserves."""
        used = [field.number for field in self.message.field]
        reserved = [r.end - 1 for r in self.message.reserved_range] + [
            r.end - 1 for r in self.message.extension_range
        ]
        return max(used + reserved) + 1


def first_plain_field(descriptors: descriptor_pb2.FileDescriptorSet) -> FieldSite:
    """The first field, outside any oneof, of a top-level message of our contracts."""
    for file in sorted(contract_files(descriptors), key=lambda f: f.name):
        for message_index, message in enumerate(file.message_type):
            for field_index, field in enumerate(message.field):
                if not field.HasField("oneof_index"):
                    message_path = (FILE_MESSAGE, message_index)
                    return FieldSite(
                        file, message, message_path, field, (*message_path, MESSAGE_FIELD, field_index)
                    )
    raise AssertionError("the contracts have no message with a field to change")


def byte_offset(source: bytes, line: int, column: int) -> int:
    """Where protoc's (line, column) falls in the file's bytes."""
    line_start = sum(len(text) for text in source.splitlines(keepends=True)[:line])
    position, counted = line_start, 0
    while counted < column:
        counted += TAB_WIDTH - counted % TAB_WIDTH if source[position : position + 1] == b"\t" else 1
        position += 1
    return position


def replace_span(proto: Path, span: Span, replacement: str, *, at_end: bool = False) -> None:
    """Replaces the text of `span` (or inserts before its last character, with at_end)."""
    source = proto.read_bytes()
    start = byte_offset(source, span.start_line, span.start_column)
    end = byte_offset(source, span.end_line, span.end_column)
    if at_end:
        start = end = end - 1  # just before the closing brace of a message
    proto.write_bytes(source[:start] + replacement.encode() + source[end:])


@pytest.fixture
def site(contracts_repo: Path, tmp_path: Path) -> FieldSite:
    return first_plain_field(compile_protos(contracts_repo / "protos", tmp_path))


def check_breaking(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BUF": str(BUF)}
    return subprocess.run(
        [str(BREAKING_SCRIPT), "HEAD"], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


def buf_lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BUF), "lint"], cwd=root, capture_output=True, text=True, check=False)


def test_buf_lint_passes_on_the_contracts() -> None:
    result = buf_lint(REPO_ROOT)
    assert result.returncode == 0, f"buf lint found problems:\n{result.stdout}{result.stderr}"


def test_buf_lint_rejects_a_badly_named_message(contracts_repo: Path) -> None:
    proto = contracts_repo / "protos" / "asan" / "linttest" / "v1" / "lint_test.proto"
    proto.parent.mkdir(parents=True)
    proto.write_text(
        'syntax = "proto3";\n\npackage asan.linttest.v1;\n\n// Not PascalCase.\nmessage bad_name {}\n'
    )

    result = buf_lint(contracts_repo)

    output = result.stdout + result.stderr
    assert result.returncode != 0, f"buf lint accepted a message named bad_name:\n{output}"
    assert "bad_name" in output


def test_deleting_a_field_is_a_breaking_change(contracts_repo: Path, site: FieldSite) -> None:
    proto = contracts_repo / "protos" / site.file.name
    replace_span(proto, Span.of(site.file, site.field_path), "")

    result = check_breaking(contracts_repo)

    output = result.stdout + result.stderr
    assert result.returncode == BREAKING, f"deleting {site.message.name}.{site.field.name} passed:\n{output}"
    assert f'"{site.field.name}"' in output


def test_renumbering_a_field_is_a_breaking_change(contracts_repo: Path, site: FieldSite) -> None:
    proto = contracts_repo / "protos" / site.file.name
    replace_span(proto, Span.of(site.file, (*site.field_path, FIELD_NUMBER)), str(site.free_number))

    result = check_breaking(contracts_repo)

    output = result.stdout + result.stderr
    assert result.returncode == BREAKING, (
        f"renumbering {site.message.name}.{site.field.name} passed:\n{output}"
    )
    assert f'"{site.field.name}"' in output


def test_adding_a_field_is_not_a_breaking_change(contracts_repo: Path, site: FieldSite) -> None:
    proto = contracts_repo / "protos" / site.file.name
    added = f"  // Added by the contract test.\n  string added_by_contract_test = {site.free_number};\n"
    replace_span(proto, Span.of(site.file, site.message_path), added, at_end=True)

    result = check_breaking(contracts_repo)

    output = result.stdout + result.stderr
    assert result.returncode == 0, f"adding a field to {site.message.name} was called breaking:\n{output}"
    assert "no breaking change" in output
    assert "added_by_contract_test" in proto.read_text()
