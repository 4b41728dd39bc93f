"""HTTP routes from the `google.api.http` rules of the contracts' methods.

Each rule (and each of its `additional_bindings`) is one `Binding`: an HTTP method, a path
template, which request field the body fills and which response field is sent. A rule
that names a field that does not exist is refused at start-up, with every problem listed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.api import annotations_pb2, http_pb2, httpbody_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from asan.common.v1 import options_pb2
from gateway.templates import PathTemplate, TemplateError, parse

HTTP_BODY = httpbody_pb2.HttpBody.DESCRIPTOR.full_name
# The http and download extensions of MethodOptions (by value: the stubs type them loosely).
_HTTP_RULE: Any = annotations_pb2.http
_DOWNLOAD: Any = options_pb2.download
_ERROR_FORMAT: Any = options_pb2.error_format
_VERBS = ("get", "put", "post", "delete", "patch")
# Request messages that carry an AIP-155 request id, which Idempotency-Key fills.
REQUEST_ID_FIELD = "request_id"


class ContractError(ValueError):
    """The http annotations of the contracts cannot be served; the message lists why."""


@dataclass(frozen=True)
class Method:
    """A gRPC method as the gateway calls it."""

    descriptor: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]

    @property
    def full_name(self) -> str:
        """ "asan.payment.v1.PaymentService.GetPayment"."""
        return str(self.descriptor.full_name)

    @property
    def grpc_path(self) -> str:
        """ "/asan.payment.v1.PaymentService/GetPayment", as the call names it."""
        return f"/{self.descriptor.containing_service.full_name}/{self.descriptor.name}"

    @property
    def service(self) -> ServiceDescriptor:
        return self.descriptor.containing_service

    @property
    def package(self) -> str:
        return str(self.service.file.package)

    @property
    def download_filename(self) -> str:
        """The file name template of a raw answer (`(asan.common.v1.download).filename`), or ""."""
        options = self.descriptor.GetOptions()
        if not options.HasExtension(_DOWNLOAD):
            return ""
        return str(options.Extensions[_DOWNLOAD].filename)

    @property
    def open311_errors(self) -> bool:
        """Whether its errors are Open311's array (`(asan.common.v1.error_format)`), not a Status."""
        options = self.descriptor.GetOptions()
        return bool(options.Extensions[_ERROR_FORMAT] == options_pb2.ERROR_FORMAT_OPEN311)

    @property
    def takes_request_id(self) -> bool:
        request_id = self.descriptor.input_type.fields_by_name.get(REQUEST_ID_FIELD)
        return (
            request_id is not None
            and request_id.type == FieldDescriptor.TYPE_STRING
            and not _repeated(request_id)
        )


@dataclass(frozen=True)
class Binding:
    """One HTTP route to a method."""

    method: Method
    http_method: str
    path: PathTemplate
    # "" (no body), "*" (the whole request) or the name of one top-level request field.
    body: str
    # "" (the whole response) or the name of one top-level response field.
    response_body: str
    # 0 for the rule itself, 1... for its additional bindings.
    index: int

    @property
    def route(self) -> str:
        """The route's template, the `route` label of the metrics."""
        return self.path.template

    @property
    def operation_id(self) -> str:
        name = f"{self.method.service.name}_{self.method.descriptor.name}"
        return name if self.index == 0 else f"{name}_{self.index}"

    @property
    def path_fields(self) -> frozenset[str]:
        return frozenset(variable.name for variable in self.path.variables)

    @property
    def sends_raw_response(self) -> bool:
        return response_descriptor(self).full_name == HTTP_BODY

    @property
    def takes_raw_body(self) -> bool:
        body = body_descriptor(self)
        return body is not None and body.full_name == HTTP_BODY


def _repeated(field_descriptor: FieldDescriptor) -> bool:
    return bool(field_descriptor.is_repeated)


def response_descriptor(binding: Binding) -> Descriptor:
    """The message the response body renders (the response, or its `response_body` field's)."""
    output: Descriptor = binding.method.descriptor.output_type
    if binding.response_body:
        field_descriptor = output.fields_by_name[binding.response_body]
        if field_descriptor.message_type is not None and not _repeated(field_descriptor):
            return field_descriptor.message_type
    return output


def body_descriptor(binding: Binding) -> Descriptor | None:
    """The message the request body fills, if the body is a message."""
    request: Descriptor = binding.method.descriptor.input_type
    if binding.body == "*":
        return request
    if binding.body:
        field_descriptor = request.fields_by_name[binding.body]
        if field_descriptor.message_type is not None and not _repeated(field_descriptor):
            return field_descriptor.message_type
    return None


def _rule_pattern(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind in _VERBS:
        return kind.upper(), str(getattr(rule, kind))
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return "", ""


def _field_at(message: Descriptor, path: Sequence[str]) -> FieldDescriptor | None:
    current: Descriptor | None = message
    found: FieldDescriptor | None = None
    for name in path:
        if current is None:
            return None
        found = current.fields_by_name.get(name)
        if found is None:
            return None
        current = found.message_type
    return found


def _check_binding(binding: Binding) -> list[str]:
    problems = []
    where = f"{binding.method.full_name} {binding.http_method} {binding.path.template}"
    request: Descriptor = binding.method.descriptor.input_type
    for variable in binding.path.variables:
        target = _field_at(request, variable.field_path)
        if target is None:
            problems.append(f"{where}: no request field {variable.name}")
        elif _repeated(target) or (
            target.message_type is not None
            and not target.message_type.full_name.startswith("google.protobuf.")
        ):
            problems.append(f"{where}: path variable {variable.name} must be a singular scalar field")
    if binding.body not in ("", "*") and binding.body not in request.fields_by_name:
        problems.append(f"{where}: body names no request field {binding.body!r}")
    output: Descriptor = binding.method.descriptor.output_type
    if binding.response_body and binding.response_body not in output.fields_by_name:
        problems.append(f"{where}: response_body names no response field {binding.response_body!r}")
    return problems


@dataclass
class _Collected:
    bindings: list[Binding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _bindings_of_method(descriptor: MethodDescriptor, collected: _Collected) -> None:
    if descriptor.client_streaming or descriptor.server_streaming:
        return  # HTTP/JSON transcoding of streams is not offered
    options = descriptor.GetOptions()
    if not options.HasExtension(_HTTP_RULE):
        return
    rule: http_pb2.HttpRule = options.Extensions[_HTTP_RULE]
    method = Method(
        descriptor,
        GetMessageClass(descriptor.input_type),
        GetMessageClass(descriptor.output_type),
    )
    for index, each in enumerate([rule, *rule.additional_bindings]):
        if index > 0 and each.additional_bindings:
            collected.problems.append(f"{descriptor.full_name}: additional bindings do not nest")
        http_method, template = _rule_pattern(each)
        if not http_method:
            collected.problems.append(f"{descriptor.full_name}: binding {index} has no pattern")
            continue
        try:
            path = parse(template)
        except TemplateError as error:
            collected.problems.append(f"{descriptor.full_name}: {error}")
            continue
        binding = Binding(method, http_method, path, each.body, each.response_body, index)
        problems = _check_binding(binding)
        collected.problems.extend(problems)
        if not problems:
            collected.bindings.append(binding)


def bindings_of(services: Iterable[ServiceDescriptor]) -> list[Binding]:
    """Every binding of every method; ContractError lists all problems at once."""
    collected = _Collected()
    for service in services:
        for descriptor in service.methods:
            _bindings_of_method(descriptor, collected)
    seen: dict[tuple[str, str], str] = {}
    for binding in collected.bindings:
        key = (binding.http_method, binding.path.template)
        if key in seen:
            collected.problems.append(
                f"{binding.http_method} {binding.path.template} is bound by both {seen[key]} and "
                f"{binding.method.full_name}"
            )
        seen[key] = binding.method.full_name
    if collected.problems:
        raise ContractError("the http annotations cannot be served:\n  " + "\n  ".join(collected.problems))
    return collected.bindings


@dataclass(frozen=True)
class Matched:
    binding: Binding
    # Field path -> decoded value of each path variable.
    values: dict[str, str]


@dataclass(frozen=True)
class NotAllowed:
    """The path exists, but not with this HTTP method."""

    route: str
    allowed: tuple[str, ...]


class RouteTable:
    """Finds the binding of a request: most specific template first (see PathTemplate.sort_key)."""

    def __init__(self, bindings: Iterable[Binding]) -> None:
        self.bindings = sorted(bindings, key=lambda b: b.path.sort_key)
        # Candidates by the leading literal segments of a path ("v1", "payments"), so that a
        # request is matched against few templates: each list holds the bindings whose
        # prefix is that key or a shorter part of it, most specific first.
        by_prefix: dict[tuple[str, ...], list[Binding]] = defaultdict(list)
        for binding in self.bindings:
            by_prefix[binding.path.prefix].append(binding)
        self._any = by_prefix.get((), [])
        self._candidates_by_prefix: dict[tuple[str, ...], list[Binding]] = {}
        for prefix in by_prefix:
            for length in range(1, len(prefix) + 1):
                key = prefix[:length]
                merged = [b for n in range(length + 1) for b in by_prefix.get(key[:n], [])]
                self._candidates_by_prefix[key] = sorted(merged, key=lambda b: b.path.sort_key)

    def _candidates(self, raw_path: str) -> list[Binding]:
        segments = raw_path[1:].split("/", 2)
        if len(segments) >= 2 and (found := self._candidates_by_prefix.get((segments[0], segments[1]))):
            return found
        return self._candidates_by_prefix.get((segments[0],), self._any)

    def match(self, http_method: str, raw_path: str) -> Matched | NotAllowed | None:
        """The binding for the request; NotAllowed if only other methods match; None if no path does.

        Raises ValueError if a path variable is not valid percent-encoded UTF-8."""
        other: list[Binding] = []
        for binding in self._candidates(raw_path):
            values = binding.path.match(raw_path)
            if values is None:
                continue
            if binding.http_method == http_method:
                return Matched(binding, values)
            other.append(binding)
        if other:
            return NotAllowed(other[0].route, tuple(sorted({b.http_method for b in other})))
        return None
