"""The gateway's tables, without a server: path templates and routes as grpc-gateway and Envoy
read `google.api.http` rules, the status mapping, Accept-Language, the rate limiter and the
settings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool

from asan.visa.v1 import visa_service_pb2
from gateway.app import negotiate_locale
from gateway.auth import TokenGate
from gateway.config import DEFAULT_METRICS_PORT, GatewayConfig, RateLimit
from gateway.contracts import Contracts
from gateway.errors import HTTP_STATUS
from gateway.limits import RateLimiter
from gateway.routes import Binding, ContractError, Matched, NotAllowed, RouteTable, bindings_of
from gateway.templates import TemplateError, parse
from gateway.transcoding import download_disposition
from services import suite
from services.runtime.auth import Principal, PrincipalKind, TokenVerifier
from services.runtime.config import AuthConfig, ConfigError
from services.runtime.errors import Unauthenticated
from services.runtime.tokens import ensure_keypair, mint
from tests.gateway.support import EXPECTED_HTTP_STATUS


def test_template_variable_takes_one_segment_and_decodes_it() -> None:
    template = parse("/v1/payments/{payment_id}")

    assert template.match("/v1/payments/abc%20d%2Fe") == {"payment_id": "abc d/e"}
    assert template.match("/v1/payments/a/b") is None
    assert template.match("/v1/payments/") is None


def test_template_variable_over_segments_keeps_an_encoded_slash() -> None:
    template = parse("/v1/{name=shelves/*/books/*}")

    assert template.match("/v1/shelves/s1/books/b%2F2") == {"name": "shelves/s1/books/b%2F2"}
    assert template.match("/v1/shelves/s1") is None
    assert template.openapi_path == "/v1/{name}"


def test_template_custom_verb_and_nested_field_path() -> None:
    template = parse("/v1/{payment.id}:refund")

    assert template.verb == "refund"
    assert template.variables[0].field_path == ("payment", "id")
    assert template.match("/v1/p-1:refund") == {"payment.id": "p-1"}
    assert template.match("/v1/p-1:cancel") is None


def test_template_double_wildcard_takes_the_rest() -> None:
    assert parse("/v1/files/{path=**}").match("/v1/files/a/b/c.pdf") == {"path": "a/b/c.pdf"}


@pytest.mark.parametrize(
    "bad", ["v1/x", "/v1/{a", "/v1/{a}/{a}", "/v1/**/x", "/v1//x", "/v1/{a.}", "/v1/x:{y}", "/v1/{a={b}}"]
)
def test_templates_the_grammar_refuses(bad: str) -> None:
    with pytest.raises(TemplateError):
        parse(bad)


def test_bindings_that_name_missing_fields_are_refused_at_start() -> None:
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(_broken_set()).file:
        pool.Add(file)
    broken = pool.FindFileByName("broken/v1/broken.proto")
    with pytest.raises(ContractError, match=r"no request field nope[\s\S]*body names no request field"):
        bindings_of(Contracts.of_files([broken]).services)


def _broken_set() -> bytes:
    """A contract whose binding names a field that does not exist, built by hand."""
    file = descriptor_pb2.FileDescriptorProto(
        name="broken/v1/broken.proto",
        package="broken.v1",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    file.message_type.add(name="Thing").field.add(name="id", number=1, type=9, label=1, json_name="id")
    method = file.service.add(name="BrokenService").method.add(
        name="Get", input_type=".broken.v1.Thing", output_type=".broken.v1.Thing"
    )
    http_rule: Any = annotations_pb2.http  # the type stubs type the extension loosely
    method.options.Extensions[http_rule].CopyFrom(http_pb2.HttpRule(post="/v1/things/{nope}", body="missing"))
    deps = descriptor_pb2.FileDescriptorSet()
    for name in ("google/protobuf/descriptor.proto", "google/api/http.proto", "google/api/annotations.proto"):
        proto = descriptor_pb2.FileDescriptorProto()
        annotations_pb2.DESCRIPTOR.pool.FindFileByName(name).CopyToProto(proto)
        deps.file.append(proto)
    deps.file.append(file)
    return deps.SerializeToString()


def test_routes_match_the_most_specific_template_first() -> None:
    routes = RouteTable(
        b for b in bindings_of(Contracts.installed().services) if b.method.package == "asan.payment.v1"
    )

    confirm = routes.match("POST", "/v1/payments/p-1:confirm")
    receipt = routes.match("GET", "/v1/payments/p-1/receipt")
    payment = routes.match("GET", "/v1/payments/p-1")

    assert isinstance(confirm, Matched) and confirm.binding.method.descriptor.name == "ConfirmPayment"
    assert confirm.values == {"payment_id": "p-1"}
    assert isinstance(receipt, Matched) and receipt.binding.method.descriptor.name == "GetReceipt"
    assert isinstance(payment, Matched) and payment.binding.method.descriptor.name == "GetPayment"
    assert routes.match("PATCH", "/v1/payments/p-1") == NotAllowed("/v1/payments/{payment_id}", ("GET",))
    assert routes.match("GET", "/v2/payments") is None
    assert routes.match("GET", "/") is None


def test_the_payment_routes_are_those_that_test_payment_routes_drives() -> None:
    """A route added to the payment contract is served at once; this fails until a test of it
    is added to test_payment_routes.py (bills: test_bill_routes.py) and the route here."""
    served = {
        (b.http_method, b.route)
        for b in bindings_of(Contracts.installed().services)
        if b.method.package == "asan.payment.v1"
    }

    assert served == {
        ("GET", "/v1/services"),
        ("POST", "/v1/payments"),
        ("GET", "/v1/payments/{payment_id}"),
        ("GET", "/v1/payments"),
        ("POST", "/v1/payments/{payment_id}:confirm"),
        ("POST", "/v1/payments/{payment_id}:cancel"),
        ("POST", "/v1/payments/{payment_id}:refund"),
        ("GET", "/v1/payments/{payment_id}/receipt"),
        ("GET", "/v1/dailySummaries/{date}"),
        ("POST", "/v1/payouts"),
        ("GET", "/v1/payouts/{payout_id}"),
        ("GET", "/v1/payouts"),
        ("POST", "/v1/payouts/{payout_id}:retry"),
        ("GET", "/v1/paymentAuditRecords"),
        ("POST", "/v1/bills"),
        ("GET", "/v1/bills/{bill_id}"),
        ("GET", "/v1/bills"),
        ("POST", "/v1/bills/{bill_id}:cancel"),
        ("POST", "/v1/bills:pay"),
        ("GET", "/v1/agencies/{agency_code}/billSummary"),
    }


def evisa_document_binding() -> Binding:
    (binding,) = [
        b
        for b in bindings_of(Contracts.installed().services)
        if b.method.full_name == "asan.visa.v1.VisaService.GetEVisaDocument"
    ]
    return binding


@pytest.mark.parametrize(
    ("application_number", "disposition"),
    [
        ("EV-2026-7K3P9QXM", b'attachment; filename="evisa-EV-2026-7K3P9QXM.pdf"'),
        (
            'EV"; filename=x.exe\r\nSet-Cookie: a=b',
            b'attachment; filename="evisa-EVfilenamex.exeSet-Cookieab.pdf"',
        ),
    ],
)
def test_the_evisa_file_is_named_from_the_request_with_nothing_that_breaks_the_header(
    application_number: str, disposition: bytes
) -> None:
    binding = evisa_document_binding()
    request = visa_service_pb2.GetEVisaDocumentRequest(application_number=application_number)

    assert binding.method.download_filename == "evisa-{application_number}.pdf"
    assert download_disposition(binding, request) == disposition


def test_every_status_code_but_ok_has_the_http_status_of_the_issues_table() -> None:
    assert {
        code.name: status for code, status in HTTP_STATUS.items() if code != grpc.StatusCode.OK
    } == EXPECTED_HTTP_STATUS


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("az", "az"),
        ("ru-RU,ru;q=0.9,en-US;q=0.8", "ru"),
        ("de, en;q=0.2, az;q=0.5", "az"),
        ("en;q=0.5, ru;q=0.5", "en"),  # a tie goes to the earlier
        ("az;q=0, en;q=0.1", "en"),  # q=0 means "not this one"
        ("fr, de", None),
        ("", None),
        (None, None),
        ("en;q=x, ru", "ru"),
    ],
)
def test_accept_language_is_reduced_to_the_best_of_az_en_ru(header: str | None, locale: str | None) -> None:
    assert negotiate_locale(header) == locale


def test_a_bucket_gives_its_burst_then_refills_at_its_rate() -> None:
    limiter = RateLimiter(RateLimit(per_second=2.0, burst=3))

    assert [limiter.wait_seconds("k", now=10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_seconds("k", now=10.0) == pytest.approx(0.5)
    assert limiter.wait_seconds("k", now=10.5) == 0.0
    assert limiter.wait_seconds("other", now=10.5) == 0.0
    assert limiter.wait_seconds("k", now=100.0) == 0.0  # never more than the burst saved up
    assert [limiter.wait_seconds("k", now=100.0) for _ in range(2)] == [0.0, 0.0]
    assert limiter.wait_seconds("k", now=100.0) > 0


def test_the_buckets_not_used_for_longest_go_first_when_there_are_too_many() -> None:
    limiter = RateLimiter(RateLimit(per_second=1.0, burst=1), max_keys=2)
    limiter.wait_seconds("a", now=0.0)
    limiter.wait_seconds("b", now=0.0)
    limiter.wait_seconds("a", now=0.0)  # "a" used last; "b" is now the oldest
    limiter.wait_seconds("c", now=0.0)

    assert limiter.wait_seconds("a", now=0.0) > 0  # kept, still empty
    assert limiter.wait_seconds("b", now=0.0) == 0.0  # dropped: a fresh bucket


def test_a_rate_of_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(RateLimit(per_second=0.0, burst=1))

    assert all(limiter.wait_seconds("k", now=0.0) == 0.0 for _ in range(100))


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_BACKEND_PAYMENT", "payment:50051")
    monkeypatch.setenv("GATEWAY_BACKEND_VISA", "127.0.0.1:50052")
    monkeypatch.setenv(
        "GATEWAY_ROUTE_DEADLINES", "ConfirmPayment=30, asan.payment.v1.PaymentService.GetPayment=2"
    )
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "https://my.gov.az, https://e-visa.gov.az")

    config = GatewayConfig.from_env(["asan.payment.v1", "asan.visa.v1"])

    assert config.backends == {"asan.payment.v1": "payment:50051", "asan.visa.v1": "127.0.0.1:50052"}
    assert config.port == 8080 and config.max_body_bytes == 1_048_576
    assert config.metrics_port == 9190
    assert config.cors_origins == ("https://my.gov.az", "https://e-visa.gov.az")
    assert config.deadline_for("asan.payment.v1.PaymentService.ConfirmPayment") == 30
    assert config.deadline_for("asan.payment.v1.PaymentService.GetPayment") == 2
    assert config.deadline_for("asan.payment.v1.PaymentService.ListPayments") == 10


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_DEADLINE_SECONDS", "0"),
        ("GATEWAY_DEADLINE_SECONDS", "soon"),
        ("GATEWAY_ROUTE_DEADLINES", "ConfirmPayment"),
        ("GATEWAY_ROUTE_DEADLINES", "ConfirmPayment=-1"),
        ("GATEWAY_MAX_BODY_BYTES", "0"),
        ("GATEWAY_RATE_LIMIT_SUBJECT_PER_SECOND", "-5"),
        ("GATEWAY_PORT", "http"),
        ("GATEWAY_METRICS_PORT", "metrics"),
    ],
)
def test_bad_settings_name_their_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv("GATEWAY_BACKEND_PAYMENT", "payment:50051")
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError, match=variable):
        GatewayConfig.from_env(["asan.payment.v1"])


def test_the_metrics_port_is_the_suites_and_no_service_uses_it() -> None:
    service_ports = {port for d in suite.definitions() for port in (d.grpc_port, d.metrics_port)}

    assert DEFAULT_METRICS_PORT == suite.GATEWAY_METRICS_PORT
    assert DEFAULT_METRICS_PORT not in service_ports | {suite.GATEWAY_PORT, suite.LOCAL_EVENTS_METRICS_PORT}


def test_every_domain_needs_its_backend_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_BACKEND_PAYMENT", "payment:50051")
    with pytest.raises(ConfigError, match="GATEWAY_BACKEND_PASSPORTS"):
        GatewayConfig.from_env(["asan.payment.v1", "asan.passports.v1"])


def test_a_verified_token_is_remembered_until_it_expires(tmp_path: Path) -> None:
    auth = AuthConfig(
        "https://login.asan.local", "asan-services", tmp_path / "public.pem", tmp_path / "private.pem", 0
    )
    ensure_keypair(auth)

    class CountingVerifier(TokenVerifier):
        verified = 0

        def verify(self, token: str) -> Principal:
            CountingVerifier.verified += 1
            return super().verify(token)

    gate = TokenGate(CountingVerifier.from_config(auth))
    token = mint(auth, PrincipalKind.CITIZEN, "5ZK3T9P", ttl_seconds=2)

    callers = [gate.check(f"Bearer {token}", anonymous=False) for _ in range(3)]
    assert CountingVerifier.verified == 1
    assert callers[0] is not None and callers[0].key == "citizen:5ZK3T9P"
    time.sleep(2.1)
    with pytest.raises(Unauthenticated, match="expired"):
        gate.check(f"Bearer {token}", anonymous=False)
    assert gate.check(None, anonymous=True) is None and gate.check("  ", anonymous=True) is None
    with pytest.raises(Unauthenticated, match="needs an `Authorization"):
        gate.check(None, anonymous=False)
