"""The contracts follow the API design rules of the suite (Google AIP and house style).

Each rule is a function from compiled descriptors (with comments) to the list of every
offender, so that one run shows all there is to fix. The rules are checked on the real
contracts, and on a deliberately bad sample to prove that each one catches what it names.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from google.api import field_behavior_pb2, field_info_pb2, http_pb2
from google.protobuf import descriptor_pb2

from tests.contracts import PROTOS_DIR, compile_protos, contract_files

FileProto = descriptor_pb2.FileDescriptorProto
MessageProto = descriptor_pb2.DescriptorProto
EnumProto = descriptor_pb2.EnumDescriptorProto
FieldProto = descriptor_pb2.FieldDescriptorProto
Rule = Callable[[descriptor_pb2.FileDescriptorSet], list[str]]

# Field numbers of the descriptor.proto fields that make up source-info paths.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM = 2, 3, 4
ENUM_VALUE = 2
SERVICE_METHOD = 2

HTTP_OPTION = "google.api.http"
PACKAGE = re.compile(r"asan\.[a-z][a-z0-9_]*\.v[1-9][0-9]*")
READ_ONLY_PREFIXES = ("Get", "List")
FLOATING_WRAPPERS = {".google.protobuf.FloatValue", ".google.protobuf.DoubleValue"}
FIELD_BEHAVIOR_OPTION = "google.api.field_behavior"
FIELD_INFO_OPTION = "google.api.field_info"
FIELD_MASK = ".google.protobuf.FieldMask"
# Fields that name or describe a person (or their card): never in a URL, where proxies,
# ingresses and browsers' histories keep them. A field path is personal when any of its
# parts is one of these (`payer.fin`, `card.number`, `foreign_passport.number`).
PERSONAL_FIELDS = frozenset(
    {
        "passport_number",
        "passport",
        "foreign_passport",
        "fin",
        "voen",
        "payer",
        "surname",
        "given_names",
        "normalized_name",
        "holder_name",
        "email",
        "phone_number",
        "address",
        "date_of_birth",
        "card",
        "cvc",
    }
)


@dataclass(frozen=True)
class Element:
    """A documentable element of a file: its kind, full name and source-info path."""

    kind: str
    full_name: str
    path: tuple[int, ...]


@dataclass(frozen=True)
class Rpc:
    """A method of a service of our contracts, with its full name (asan.<domain>.v1.Service.Method)."""

    full_name: str
    method: descriptor_pb2.MethodDescriptorProto


def messages(file: FileProto) -> Iterator[tuple[str, MessageProto, tuple[int, ...]]]:
    """Every message of a file, nested and synthetic map entries included."""

    def walk(
        message: MessageProto, full_name: str, path: tuple[int, ...]
    ) -> Iterator[tuple[str, MessageProto, tuple[int, ...]]]:
        yield full_name, message, path
        for index, nested in enumerate(message.nested_type):
            yield from walk(nested, f"{full_name}.{nested.name}", (*path, MESSAGE_NESTED, index))

    for index, message in enumerate(file.message_type):
        yield from walk(message, f"{file.package}.{message.name}", (FILE_MESSAGE, index))


def enums(file: FileProto) -> Iterator[tuple[str, EnumProto, tuple[int, ...]]]:
    for index, enum in enumerate(file.enum_type):
        yield f"{file.package}.{enum.name}", enum, (FILE_ENUM, index)
    for full_name, message, path in messages(file):
        for index, enum in enumerate(message.enum_type):
            yield f"{full_name}.{enum.name}", enum, (*path, MESSAGE_ENUM, index)


def documentable(file: FileProto) -> Iterator[Element]:
    """What the API reference shows: messages, fields, enums, values, services, rpcs."""
    for full_name, message, path in messages(file):
        if message.options.map_entry:  # synthetic: `map<k, v>` has no source of its own
            continue
        yield Element("message", full_name, path)
        for index, field in enumerate(message.field):
            yield Element("field", f"{full_name}.{field.name}", (*path, MESSAGE_FIELD, index))
    for full_name, enum, path in enums(file):
        yield Element("enum", full_name, path)
        for index, value in enumerate(enum.value):
            yield Element("enum value", f"{full_name}.{value.name}", (*path, ENUM_VALUE, index))
    for index, service in enumerate(file.service):
        service_name = f"{file.package}.{service.name}"
        yield Element("service", service_name, (FILE_SERVICE, index))
        for method_index, method in enumerate(service.method):
            yield Element(
                "rpc", f"{service_name}.{method.name}", (FILE_SERVICE, index, SERVICE_METHOD, method_index)
            )


def rpcs(descriptors: descriptor_pb2.FileDescriptorSet) -> Iterator[Rpc]:
    for file in contract_files(descriptors):
        for service in file.service:
            for method in service.method:
                yield Rpc(f"{file.package}.{service.name}.{method.name}", method)


def message_index(descriptors: descriptor_pb2.FileDescriptorSet) -> dict[str, MessageProto]:
    """Every message of the set (imports too) by its type reference, e.g. `.asan.common.v1.Money`."""
    return {f".{name}": message for file in descriptors.file for name, message, _ in messages(file)}


def http_verb(method: descriptor_pb2.MethodDescriptorProto) -> str | None:
    """The verb (get, post, ...) of the method's google.api.http binding, if it has one."""
    for option, value in method.options.ListFields():
        if option.full_name == HTTP_OPTION:
            verb: str | None = value.WhichOneof("pattern")
            return verb
    return None


def http_rules(method: descriptor_pb2.MethodDescriptorProto) -> list[http_pb2.HttpRule]:
    """The method's google.api.http rule and its additional bindings: every route to it."""
    for option, value in method.options.ListFields():
        if option.full_name == HTTP_OPTION:
            return [value, *value.additional_bindings]
    return []


def field_options(field: FieldProto) -> dict[str, object]:
    return {option.full_name: value for option, value in field.options.ListFields()}


def behaviors(field: FieldProto) -> set[int]:
    """The field's google.api.field_behavior values (a repeated option)."""
    return set(cast(Iterable[int], field_options(field).get(FIELD_BEHAVIOR_OPTION, ())))


def is_uuid4(field: FieldProto) -> bool:
    info = field_options(field).get(FIELD_INFO_OPTION)
    return isinstance(info, field_info_pb2.FieldInfo) and info.format == field_info_pb2.FieldInfo.UUID4


def query_fields(
    index: dict[str, MessageProto], message: MessageProto, bound: set[str], prefix: str = ""
) -> Iterator[str]:
    """The field paths a query string may set, as the gateway reads it: every field not bound
    by the path or the body, into singular messages."""
    for field in message.field:
        path = prefix + field.name
        if path in bound:
            continue
        nested = index.get(field.type_name) if field.type == FieldProto.TYPE_MESSAGE else None
        if (
            nested is not None
            and field.label != FieldProto.LABEL_REPEATED
            and not nested.options.map_entry
            and not field.type_name.startswith(".google.protobuf.")
        ):
            yield from query_fields(index, nested, bound, f"{path}.")
            continue
        yield path


def singular_field(message: MessageProto, name: str, type_: FieldProto.Type.ValueType) -> bool:
    return any(
        field.name == name and field.type == type_ and field.label != FieldProto.LABEL_REPEATED
        for field in message.field
    )


# The rules. Each returns one line per offender.


def rpcs_without_http_binding(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """AIP-127: every RPC is also reachable over HTTP/JSON through the gateway."""
    return [rpc.full_name for rpc in rpcs(descriptors) if http_verb(rpc.method) is None]


def mutations_without_request_id(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """AIP-155: a method that changes state takes a client-chosen `string request_id`."""
    index = message_index(descriptors)
    return [
        f"{rpc.full_name} ({rpc.method.input_type.lstrip('.')})"
        for rpc in rpcs(descriptors)
        if not rpc.method.name.startswith(READ_ONLY_PREFIXES)
        and not singular_field(index[rpc.method.input_type], "request_id", FieldProto.TYPE_STRING)
    ]


def list_methods_without_paging(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """AIP-158: List takes `int32 page_size`, `string page_token`; answers `string next_page_token`."""
    index = message_index(descriptors)
    offenders = []
    for rpc in rpcs(descriptors):
        if not rpc.method.name.startswith("List"):
            continue
        request, response = index[rpc.method.input_type], index[rpc.method.output_type]
        missing = [
            *([] if singular_field(request, "page_size", FieldProto.TYPE_INT32) else ["int32 page_size"]),
            *([] if singular_field(request, "page_token", FieldProto.TYPE_STRING) else ["string page_token"]),
        ]
        if not singular_field(response, "next_page_token", FieldProto.TYPE_STRING):
            missing.append("string next_page_token in the response")
        if missing:
            offenders.append(f"{rpc.full_name}: no {', '.join(missing)}")
    return offenders


def elements_without_comment(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """House style: every element has a leading comment, since it becomes the API reference."""
    offenders = []
    for file in contract_files(descriptors):
        commented = {
            tuple(location.path)
            for location in file.source_code_info.location
            if location.leading_comments.strip()
        }
        offenders += [
            f"{element.kind} {element.full_name} ({file.name})"
            for element in documentable(file)
            if element.path not in commented
        ]
    return offenders


def floating_point_fields(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """Money is never a float: no float, double or their wrappers anywhere in asan.*."""
    floating = {FieldProto.TYPE_FLOAT, FieldProto.TYPE_DOUBLE}
    return [
        f"{full_name}.{field.name} ({file.name})"
        for file in contract_files(descriptors)
        for full_name, message, _ in messages(file)
        for field in message.field
        if field.type in floating or field.type_name in FLOATING_WRAPPERS
    ]


def personal_data_in_urls(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """No personal field in any route's path template or query: lookups by a passport take it
    in a POST body (AIP-136 custom methods)."""
    index = message_index(descriptors)
    offenders = []
    for rpc in rpcs(descriptors):
        request = index[rpc.method.input_type]
        for rule in http_rules(rpc.method):
            verb = rule.WhichOneof("pattern")
            template = getattr(rule, verb) if verb != "custom" else rule.custom.path
            where = f"{rpc.full_name}: {(verb or '').upper()} {template}"
            in_path = re.findall(r"\{([A-Za-z0-9_.]+)", template)
            offenders += [
                f"{where}: path {path}" for path in in_path if PERSONAL_FIELDS & set(path.split("."))
            ]
            if rule.body == "*":
                continue
            bound = {*in_path, *([rule.body] if rule.body else [])}
            offenders += [
                f"{where}: query {path}"
                for path in query_fields(index, request, bound)
                if PERSONAL_FIELDS & set(path.split("."))
            ]
    return offenders


def request_ids_without_uuid_and_required(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """AIP-155 and AIP-202: a request's `request_id` is REQUIRED and a UUID4, so that OpenAPI and
    generated clients know it (the gateway fills it from the Idempotency-Key header). A resource
    that records the id of the request that made it (an access log entry) is answered, never
    sent: its `request_id` is OUTPUT_ONLY."""
    requests = {rpc.method.input_type.lstrip(".") for rpc in rpcs(descriptors)}
    offenders = []
    for file in contract_files(descriptors):
        for full_name, message, _ in messages(file):
            for field in message.field:
                if field.name != "request_id":
                    continue
                if full_name in requests:
                    wrong = field_behavior_pb2.REQUIRED not in behaviors(field) or not is_uuid4(field)
                else:
                    wrong = field_behavior_pb2.OUTPUT_ONLY not in behaviors(field)
                if wrong:
                    offenders.append(f"{full_name}.{field.name}")
    return offenders


def updates_without_update_mask(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """AIP-134: an Update method takes a `google.protobuf.FieldMask update_mask`."""
    index = message_index(descriptors)
    return [
        rpc.full_name
        for rpc in rpcs(descriptors)
        if rpc.method.name.startswith("Update")
        and not any(
            field.name == "update_mask" and field.type_name == FIELD_MASK
            for field in index[rpc.method.input_type].field
        )
    ]


def output_only_fields_marked_required(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """AIP-203: a field is the service's (OUTPUT_ONLY) or the client's to send (REQUIRED),
    never both."""
    return [
        f"{full_name}.{field.name}"
        for file in contract_files(descriptors)
        for full_name, message, _ in messages(file)
        for field in message.field
        if {field_behavior_pb2.REQUIRED, field_behavior_pb2.OUTPUT_ONLY} <= behaviors(field)
    ]


def misplaced_packages(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """Packages are asan.<domain>.v<major>, and a file lives in the folder its package names."""
    offenders = []
    for file in contract_files(descriptors):
        folder = Path(file.name).parent.as_posix()
        if not PACKAGE.fullmatch(file.package):
            offenders.append(f"{file.name}: package {file.package!r} is not asan.<domain>.v<major>")
        elif folder != file.package.replace(".", "/"):
            offenders.append(
                f"{file.name}: package {file.package} belongs in {file.package.replace('.', '/')}/"
            )
    return offenders


# The rules on the real contracts.


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    return compile_protos(PROTOS_DIR, tmp_path_factory.mktemp("descriptors"))


def offenders_message(what: str, offenders: Sequence[str]) -> str:
    return f"{len(offenders)} {what}:\n" + "\n".join(f"  {offender}" for offender in offenders)


def test_contracts_define_services_to_check(contracts: descriptor_pb2.FileDescriptorSet) -> None:
    assert contract_files(contracts), "no asan/**/*.proto was compiled"
    assert any(rpcs(contracts)), "no service with an RPC in asan/**/*.proto"


def test_every_rpc_has_an_http_binding(contracts: descriptor_pb2.FileDescriptorSet) -> None:
    offenders = rpcs_without_http_binding(contracts)
    assert not offenders, offenders_message("RPCs without a google.api.http option (AIP-127)", offenders)


def test_every_mutating_rpc_takes_a_request_id(contracts: descriptor_pb2.FileDescriptorSet) -> None:
    offenders = mutations_without_request_id(contracts)
    assert not offenders, offenders_message(
        "RPCs other than Get*/List* whose request lacks `string request_id` (AIP-155)", offenders
    )


def test_every_list_rpc_pages(contracts: descriptor_pb2.FileDescriptorSet) -> None:
    offenders = list_methods_without_paging(contracts)
    assert not offenders, offenders_message("List RPCs without AIP-158 paging", offenders)


def test_every_element_has_a_leading_comment(contracts: descriptor_pb2.FileDescriptorSet) -> None:
    offenders = elements_without_comment(contracts)
    assert not offenders, offenders_message("elements without a leading comment", offenders)


def test_no_field_is_a_floating_point_number(contracts: descriptor_pb2.FileDescriptorSet) -> None:
    offenders = floating_point_fields(contracts)
    assert not offenders, offenders_message(
        "float/double fields (money and quantities are integers, see asan.common.v1.Money)", offenders
    )


def test_no_route_carries_personal_data_in_its_path_or_query(
    contracts: descriptor_pb2.FileDescriptorSet,
) -> None:
    offenders = personal_data_in_urls(contracts)
    assert not offenders, offenders_message(
        "routes with personal data in the URL (send it in a POST body, AIP-136)", offenders
    )


def test_every_request_id_is_a_required_uuid(contracts: descriptor_pb2.FileDescriptorSet) -> None:
    offenders = request_ids_without_uuid_and_required(contracts)
    assert not offenders, offenders_message(
        "request_id fields of requests without field_behavior REQUIRED and field_info.format UUID4,"
        " or of resources without OUTPUT_ONLY",
        offenders,
    )


def test_every_update_takes_an_update_mask(contracts: descriptor_pb2.FileDescriptorSet) -> None:
    offenders = updates_without_update_mask(contracts)
    assert not offenders, offenders_message("Update methods without update_mask (AIP-134)", offenders)


def test_no_field_is_both_required_and_output_only(contracts: descriptor_pb2.FileDescriptorSet) -> None:
    offenders = output_only_fields_marked_required(contracts)
    assert not offenders, offenders_message("fields both REQUIRED and OUTPUT_ONLY", offenders)


def test_the_contracts_annotate_what_clients_send_and_what_they_read(
    contracts: descriptor_pb2.FileDescriptorSet,
) -> None:
    """The payment and visa contracts mark their required and output-only fields (AIP-203),
    which the OpenAPI document and the services' validation follow."""
    index = message_index(contracts)
    for resource in (".asan.payment.v1.Payment", ".asan.visa.v1.Application", ".asan.visa.v1.CountryPolicy"):
        marks = {behavior for field in index[resource].field for behavior in behaviors(field)}
        assert field_behavior_pb2.REQUIRED in marks, resource
        assert resource == ".asan.visa.v1.CountryPolicy" or field_behavior_pb2.OUTPUT_ONLY in marks, resource


def test_packages_are_versioned_domains_mirrored_by_folders(
    contracts: descriptor_pb2.FileDescriptorSet,
) -> None:
    offenders = misplaced_packages(contracts)
    assert not offenders, offenders_message("files with a wrong package or folder", offenders)


# The same rules on a sample that breaks each of them, so that a rule that silently
# stops looking cannot pass the real contracts.

BAD_SAMPLE = {
    "asan/wrong/v1/bad.proto": """
        syntax = "proto3";

        package asan.demo.v1;

        import "google/api/annotations.proto";
        import "google/protobuf/wrappers.proto";

        // Documented.
        service DemoService {
          rpc CreateThing(CreateThingRequest) returns (Thing);

          // Documented.
          rpc ListThings(ListThingsRequest) returns (ListThingsResponse) {
            option (google.api.http) = {get: "/v1/things"};
          }

          // Documented, and read-only by its name.
          rpc GetThing(GetThingRequest) returns (Thing) {
            option (google.api.http) = {get: "/v1/things/{thing_id}"};
          }

          // Documented; a passport in the path, an e-mail in the query.
          rpc GetThingOfOwner(GetThingOfOwnerRequest) returns (Thing) {
            option (google.api.http) = {
              get: "/v1/owners/{owner.passport_number}/thing"
              additional_bindings {post: "/v1/owners:find" body: "*"}
            };
          }

          // Documented; replaces the thing whole.
          rpc UpdateThing(UpdateThingRequest) returns (Thing) {
            option (google.api.http) = {
              patch: "/v1/things:update"
              body: "thing"
            };
          }
        }

        // Documented.
        message Owner {
          // Documented.
          string passport_number = 1;
        }

        // Documented.
        message GetThingOfOwnerRequest {
          // Documented.
          Owner owner = 1;
          // Documented.
          string email = 2;
        }

        // Documented.
        message UpdateThingRequest {
          // Neither required nor a UUID.
          string request_id = 1;
          // Documented.
          Thing thing = 2;
        }

        message Thing {
          double price = 1;
          // Documented.
          map<string, double> rates = 2;
          // Documented.
          Colour colour = 3;
          // The request that made it, but not OUTPUT_ONLY.
          string request_id = 4;
        }

        // Documented.
        message CreateThingRequest {
          // An int, not a string.
          int64 request_id = 1;
        }

        // Documented.
        message GetThingRequest {
          // Documented.
          string thing_id = 1;
        }

        // Documented.
        message ListThingsRequest {
          // The wrong type.
          int64 page_size = 1;
        }

        // Documented.
        message ListThingsResponse {
          // Documented.
          repeated Thing things = 1;
          // Documented.
          google.protobuf.DoubleValue weight = 2;
          // Documented.
          string next_page_token = 3;
        }

        enum Colour {
          // Documented.
          COLOUR_UNSPECIFIED = 0;
          COLOUR_RED = 1;
        }
    """,
    "asan/demo/unversioned.proto": """
        syntax = "proto3";

        package asan.demo;

        // Documented.
        message Empty {}
    """,
}


@pytest.fixture(scope="module")
def bad_sample(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    root = tmp_path_factory.mktemp("bad_sample")
    for name, source in BAD_SAMPLE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(source).lstrip())
    return compile_protos(root, root)


BAD_SAMPLE_OFFENDERS: list[tuple[Rule, list[str]]] = [
    (rpcs_without_http_binding, ["asan.demo.v1.DemoService.CreateThing"]),
    (
        mutations_without_request_id,
        ["asan.demo.v1.DemoService.CreateThing (asan.demo.v1.CreateThingRequest)"],
    ),
    (
        list_methods_without_paging,
        ["asan.demo.v1.DemoService.ListThings: no int32 page_size, string page_token"],
    ),
    (
        elements_without_comment,
        [
            "message asan.demo.v1.Thing (asan/wrong/v1/bad.proto)",
            "field asan.demo.v1.Thing.price (asan/wrong/v1/bad.proto)",
            "enum asan.demo.v1.Colour (asan/wrong/v1/bad.proto)",
            "enum value asan.demo.v1.Colour.COLOUR_RED (asan/wrong/v1/bad.proto)",
            "rpc asan.demo.v1.DemoService.CreateThing (asan/wrong/v1/bad.proto)",
        ],
    ),
    (
        floating_point_fields,
        [
            "asan.demo.v1.Thing.price (asan/wrong/v1/bad.proto)",
            "asan.demo.v1.Thing.RatesEntry.value (asan/wrong/v1/bad.proto)",
            "asan.demo.v1.ListThingsResponse.weight (asan/wrong/v1/bad.proto)",
        ],
    ),
    (
        personal_data_in_urls,
        [
            "asan.demo.v1.DemoService.GetThingOfOwner: GET /v1/owners/{owner.passport_number}/thing: "
            "path owner.passport_number",
            "asan.demo.v1.DemoService.GetThingOfOwner: GET /v1/owners/{owner.passport_number}/thing: "
            "query email",
        ],
    ),
    (
        request_ids_without_uuid_and_required,
        [
            "asan.demo.v1.UpdateThingRequest.request_id",
            "asan.demo.v1.Thing.request_id",
            "asan.demo.v1.CreateThingRequest.request_id",
        ],
    ),
    (updates_without_update_mask, ["asan.demo.v1.DemoService.UpdateThing"]),
    (
        misplaced_packages,
        [
            "asan/demo/unversioned.proto: package 'asan.demo' is not asan.<domain>.v<major>",
            "asan/wrong/v1/bad.proto: package asan.demo.v1 belongs in asan/demo/v1/",
        ],
    ),
]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [pytest.param(rule, expected, id=rule.__name__) for rule, expected in BAD_SAMPLE_OFFENDERS],
)
def test_each_rule_names_every_offender_of_a_bad_sample(
    bad_sample: descriptor_pb2.FileDescriptorSet, rule: Rule, expected: list[str]
) -> None:
    assert sorted(rule(bad_sample)) == sorted(expected)
