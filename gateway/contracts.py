"""What the gateway serves: the gRPC services of the installed `asan.*` stubs, read from their
compiled descriptors, and the comments of their .proto files.

Nothing here names a service: every `asan.<domain>.v<N>` package that the stubs hold is
found by importing every generated module, so a service or method added to the contracts is
served after `make protos`, without a line written in the gateway.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

log = logging.getLogger("asan.gateway")

STUBS_PACKAGE = "asan"
# Written by protos/generate.py beside the stubs: our files with their comments.
DESCRIPTOR_SET = "descriptor_set.binpb"
CONTRACT_PACKAGE = re.compile(r"asan\.[a-z][a-z0-9_]*\.v[0-9]+")

# Field numbers of descriptor.proto, as SourceCodeInfo paths use them.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


class Comments:
    """Leading comments of the .proto files by full name: messages, fields ("pkg.Msg.field"),
    enums, enum values ("pkg.Enum.VALUE"), oneofs, services and methods ("pkg.Service.Method")."""

    def __init__(self, by_name: dict[str, str] | None = None) -> None:
        self._by_name = MappingProxyType(dict(by_name or {}))

    def __len__(self) -> int:
        return len(self._by_name)

    def of(self, full_name: str) -> str:
        return self._by_name.get(full_name, "")

    @classmethod
    def from_descriptor_set(cls, data: bytes) -> Comments:
        descriptors = descriptor_pb2.FileDescriptorSet.FromString(data)
        by_name: dict[str, str] = {}
        for file in descriptors.file:
            locations = {tuple(location.path): location for location in file.source_code_info.location}
            for path, name in _named_paths(file):
                location = locations.get(path)
                if location is not None:
                    text = _clean(location.leading_comments or location.trailing_comments)
                    if text:
                        by_name[name] = text
        return cls(by_name)

    @classmethod
    def installed(cls) -> Comments:
        """The comments shipped with the stubs; none (and a warning) if the set is missing."""
        source = resources.files(STUBS_PACKAGE) / DESCRIPTOR_SET
        if not source.is_file():
            log.warning(
                "no descriptor set beside the stubs: the API reference has no comments",
                extra={"missing": DESCRIPTOR_SET},
            )
            return cls()
        return cls.from_descriptor_set(source.read_bytes())


def _clean(comment: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in comment.strip("\n").split("\n")]
    return "\n".join(line.rstrip() for line in lines).strip()


def _named_paths(file: descriptor_pb2.FileDescriptorProto) -> Iterator[tuple[tuple[int, ...], str]]:
    prefix = f"{file.package}." if file.package else ""
    for i, message in enumerate(file.message_type):
        yield from _message_paths(message, (_FILE_MESSAGE, i), prefix + message.name)
    for i, enum in enumerate(file.enum_type):
        yield from _enum_paths(enum, (_FILE_ENUM, i), prefix + enum.name)
    for i, service in enumerate(file.service):
        name = prefix + service.name
        yield (_FILE_SERVICE, i), name
        for j, method in enumerate(service.method):
            yield (_FILE_SERVICE, i, _SERVICE_METHOD, j), f"{name}.{method.name}"


def _message_paths(
    message: descriptor_pb2.DescriptorProto, path: tuple[int, ...], name: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    yield path, name
    for i, field in enumerate(message.field):
        yield (*path, _MESSAGE_FIELD, i), f"{name}.{field.name}"
    for i, oneof in enumerate(message.oneof_decl):
        yield (*path, _MESSAGE_ONEOF, i), f"{name}.{oneof.name}"
    for i, nested in enumerate(message.nested_type):
        yield from _message_paths(nested, (*path, _MESSAGE_NESTED, i), f"{name}.{nested.name}")
    for i, enum in enumerate(message.enum_type):
        yield from _enum_paths(enum, (*path, _MESSAGE_ENUM, i), f"{name}.{enum.name}")


def _enum_paths(
    enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], name: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    yield path, name
    for i, value in enumerate(enum.value):
        yield (*path, _ENUM_VALUE, i), f"{name}.{value.name}"


def stub_files(root: str = STUBS_PACKAGE) -> list[FileDescriptor]:
    """The file descriptors of every generated module under the installed `root` package."""
    package = importlib.import_module(root)
    files = []
    for module_info in pkgutil.walk_packages(package.__path__, prefix=f"{root}."):
        if module_info.name.endswith("_pb2"):
            files.append(importlib.import_module(module_info.name).DESCRIPTOR)
    return files


@dataclass(frozen=True)
class Contracts:
    """The services to serve, with the comments that document them."""

    services: tuple[ServiceDescriptor, ...]
    comments: Comments

    @property
    def packages(self) -> list[str]:
        return sorted({service.file.package for service in self.services})

    @classmethod
    def of_files(
        cls,
        files: Iterable[FileDescriptor],
        comments: Comments | None = None,
        package_pattern: re.Pattern[str] | None = None,
    ) -> Contracts:
        """Every service of `files` whose package matches `package_pattern` (any, if None)."""
        services = [
            service
            for file in files
            if package_pattern is None or package_pattern.fullmatch(file.package)
            for service in file.services_by_name.values()
        ]
        return cls(tuple(sorted(services, key=lambda s: s.full_name)), comments or Comments())

    @classmethod
    def installed(cls) -> Contracts:
        """Every `asan.<domain>.v<N>` service of the installed stubs."""
        return cls.of_files(stub_files(), Comments.installed(), CONTRACT_PACKAGE)
