"""What the interceptors do to every call, as a client and an operator see it: the request
id, the Prometheus metrics, the error details, and the refusal of bad tokens.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from asan.common.v1 import identifiers_pb2, money_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.payment.service import SERVICE_NAME, definition
from services.runtime.auth import PrincipalKind
from services.runtime.config import AuthConfig
from services.runtime.context import new_correlation_id
from services.runtime.interceptors import GO_CODE_NAMES, ServiceInterceptor
from services.runtime.tokens import ensure_keypair, mint
from tests.runtime.serversupport import (
    CITIZEN,
    INTERNAL_MESSAGE,
    LEAKY_TABLE,
    error_info,
    health_stub,
    payment_process,
    payment_with_broken_get_payment,
    prepared_process_env,
    refused,
    rich_status,
    unpack,
)
from tests.support.servers import RunningService, running_service
from tests.support.servers import test_config as config_for_tests
from tests.support.waiting import eventually

if TYPE_CHECKING:
    from asan.payment.v1.payment_service_pb2_grpc import PaymentServiceAsyncStub as Stub

DOMAIN = "payment.asan.gov.az"


# One event loop for the module, so that the tests that only read can share one server.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def payment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningService]:
    """The payment service on SQLite, shared by the tests that change nothing in it: what they
    check does not depend on the database."""
    directory = tmp_path_factory.mktemp("interceptors")
    database_url = f"sqlite:///{directory / 'payment.sqlite3'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ASAN_VAR_DIR", str(directory / "var"))
        config = config_for_tests(definition, database_url)
    async with running_service(definition, database_url, config) as service:
        yield service


@pytest_asyncio.fixture(loop_scope="module")
async def fresh_payment(new_database_url: Callable[[str, str], str]) -> AsyncIterator[RunningService]:
    """A payment service of its own, for a test that counts what happened to it."""
    async with running_service(definition, new_database_url("sqlite", "interceptors")) as service:
        yield service


@pytest.fixture
def stub(payment: RunningService) -> Stub:
    return payment_service_pb2_grpc.PaymentServiceStub(payment.channel)


def unknown_payment() -> payment_service_pb2.GetPaymentRequest:
    return payment_service_pb2.GetPaymentRequest(payment_id=str(uuid.uuid4()))


# --- Correlation id -----------------------------------------------------------------------------


async def test_the_request_id_the_client_sends_comes_back(stub: Stub) -> None:
    call = stub.ListServices(
        payment_service_pb2.ListServicesRequest(), metadata=(("x-request-id", "support-ticket-4711"),)
    )
    await call

    assert (await call.trailing_metadata()).get("x-request-id") == "support-ticket-4711"


async def test_a_request_id_is_made_when_the_client_sends_none(stub: Stub) -> None:
    call = stub.ListServices(payment_service_pb2.ListServicesRequest())
    await call

    made = (await call.trailing_metadata()).get("x-request-id")
    assert isinstance(made, str)
    assert uuid.UUID(made).version == 4


async def test_a_refused_call_returns_the_request_id_too(stub: Stub) -> None:
    call = stub.GetPayment(unknown_payment(), metadata=(("x-request-id", "support-ticket-4712"),))

    assert (await refused(call)).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await call.trailing_metadata()).get("x-request-id") == "support-ticket-4712"


async def test_the_log_lines_of_a_call_carry_its_request_id(tmp_path: Path) -> None:
    async with payment_process(prepared_process_env(tmp_path), tmp_path) as process:
        stub = payment_service_pb2_grpc.PaymentServiceStub(process.channel)
        await stub.ListServices(
            payment_service_pb2.ListServicesRequest(),
            metadata=(("x-request-id", "support-ticket-4713"),),
            timeout=5,
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetPayment(
                unknown_payment(), metadata=(("x-request-id", "support-ticket-4714"),), timeout=5
            )
        assert await process.terminate() == 0

    # Every line on stdout is a JSON object.
    lines = [json.loads(line) for line in process.log_text().splitlines()]
    calls = {line["correlation_id"]: line for line in lines if line["message"] == "grpc call"}
    listed = calls["support-ticket-4713"]
    assert listed["grpc_method"] == f"/{SERVICE_NAME}/ListServices"
    assert listed["grpc_code"] == "OK"
    assert listed["service"] == "payment"
    assert calls["support-ticket-4714"]["grpc_code"] == "UNAUTHENTICATED"
    refusals = [line for line in lines if line["message"] == "request refused"]
    assert [line["correlation_id"] for line in refusals] == ["support-ticket-4714"]


# --- Metrics ------------------------------------------------------------------------------------


def metric_samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, method: str, **labels: str
) -> float:
    """The value of the sample for a PaymentService method; 0 if it was never written."""
    key = frozenset(
        {"grpc_type": "unary", "grpc_service": SERVICE_NAME, "grpc_method": method, **labels}.items()
    )
    return samples.get((name, key), 0.0)


async def test_calls_are_counted_with_the_go_grpc_prometheus_names_and_labels(
    fresh_payment: RunningService,
) -> None:
    payment = fresh_payment
    stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
    await stub.ListServices(payment_service_pb2.ListServicesRequest())
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreatePayment(
            payment_service_pb2.CreatePaymentRequest(), metadata=payment.bearer("citizen", CITIZEN)
        )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetPayment(unknown_payment())
    # An aborted call's status leaves before the interceptor records it, on the same loop.
    await eventually(
        lambda: (
            sample(metric_samples(payment.metrics_text()), "grpc_server_handling_seconds_count", "GetPayment")
            > 0
        ),
        what="the last call recorded",
    )

    samples = metric_samples(payment.metrics_text())

    for method in ("ListServices", "CreatePayment", "GetPayment"):
        assert sample(samples, "grpc_server_started_total", method) == 1
        assert sample(samples, "grpc_server_msg_received_total", method) == 1
        assert sample(samples, "grpc_server_handling_seconds_count", method) == 1
        assert sample(samples, "grpc_server_handling_seconds_bucket", method, le="+Inf") == 1
    assert sample(samples, "grpc_server_handled_total", "ListServices", grpc_code="OK") == 1
    assert sample(samples, "grpc_server_handled_total", "CreatePayment", grpc_code="InvalidArgument") == 1
    assert sample(samples, "grpc_server_handled_total", "GetPayment", grpc_code="Unauthenticated") == 1
    # As in go-grpc-prometheus, a message is sent only by a call that succeeds.
    assert sample(samples, "grpc_server_msg_sent_total", "ListServices") == 1
    assert sample(samples, "grpc_server_msg_sent_total", "CreatePayment") == 0
    codes = {dict(labels)["grpc_code"] for name, labels in samples if name == "grpc_server_handled_total"}
    assert codes == {"OK", "InvalidArgument", "Unauthenticated"}
    # Every code has a label, spelt as grpc-go spells it (one "l" in Canceled).
    assert set(GO_CODE_NAMES) == set(grpc.StatusCode)
    assert GO_CODE_NAMES[grpc.StatusCode.CANCELLED] == "Canceled"


# --- Errors -------------------------------------------------------------------------------------


async def test_a_service_error_arrives_with_its_code_reason_and_domain(
    payment: RunningService, stub: Stub
) -> None:
    request = unknown_payment()
    call = stub.GetPayment(request, metadata=payment.bearer("citizen", CITIZEN))

    assert (await refused(call)).code() == grpc.StatusCode.NOT_FOUND
    info = await error_info(call)
    assert (info.reason, info.domain) == ("PAYMENT_NOT_FOUND", DOMAIN)
    assert info.metadata["payment_id"] == request.payment_id


async def test_invalid_argument_names_every_bad_field_once(payment: RunningService, stub: Stub) -> None:
    request = payment_service_pb2.CreatePaymentRequest(
        request_id=str(uuid.uuid4()),
        payment=payment_pb2.Payment(
            payer=identifiers_pb2.PartyId(fin="not-a-fin"),
            service_code="state.duty.passport",
            amount=money_pb2.Money(minor_units=6000, currency_code="USD"),
            reference="",
        ),
    )
    call = stub.CreatePayment(request, metadata=payment.bearer("citizen", CITIZEN))

    assert (await refused(call)).code() == grpc.StatusCode.INVALID_ARGUMENT
    status = await rich_status(call)
    [info] = unpack(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", DOMAIN)
    [bad_request] = unpack(status, error_details_pb2.BadRequest)
    fields = [violation.field for violation in bad_request.field_violations]
    assert sorted(fields) == ["payment.amount.currency_code", "payment.payer.fin", "payment.reference"]
    assert all(violation.description for violation in bad_request.field_violations)


@pytest_asyncio.fixture(loop_scope="module")
async def broken_payment(database_url: str) -> AsyncIterator[RunningService]:
    async with running_service(payment_with_broken_get_payment(), database_url) as service:
        yield service


async def test_an_unexpected_failure_is_internal_and_reveals_nothing(broken_payment: RunningService) -> None:
    stub = payment_service_pb2_grpc.PaymentServiceStub(broken_payment.channel)
    call = stub.GetPayment(unknown_payment(), metadata=broken_payment.bearer("citizen", CITIZEN))

    error = await refused(call)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == INTERNAL_MESSAGE
    status = await rich_status(call)
    assert (status.code, status.message, list(status.details)) == (
        grpc.StatusCode.INTERNAL.value[0],
        INTERNAL_MESSAGE,
        [],
    )
    everything_sent = str(error) + repr(error.trailing_metadata()) + repr(error.initial_metadata())
    for internal in (LEAKY_TABLE, "Traceback", "sqlalchemy", "SELECT", "Error:"):
        assert internal not in everything_sent

    # It is an outage as the stock dashboards count one. The status reaches the client before
    # the server's interceptor has counted the call: wait for the count, never for a second one.
    def handled_internal() -> float:
        samples = metric_samples(broken_payment.metrics_text())
        return sample(samples, "grpc_server_handled_total", "GetPayment", grpc_code="Internal")

    for _ in range(50):
        if handled_internal():
            break
        await asyncio.sleep(0.02)
    assert handled_internal() == 1


# --- Authentication -----------------------------------------------------------------------------


async def refusal_reason(call: grpc.aio.UnaryUnaryCall[Any, Any]) -> str:
    assert (await refused(call)).code() == grpc.StatusCode.UNAUTHENTICATED
    info = await error_info(call)
    assert info.domain == DOMAIN
    return info.reason


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "TOKEN_MISSING"),
        ("Bearer", "TOKEN_MALFORMED"),
        ("Basic dXNlcjpwYXNzd29yZA==", "TOKEN_MALFORMED"),
        ("Bearer not a token", "TOKEN_MALFORMED"),
        ("Bearer abc.def.ghi", "TOKEN_MALFORMED"),
    ],
)
async def test_a_call_without_a_usable_token_is_refused(
    stub: Stub, authorization: str | None, reason: str
) -> None:
    metadata = () if authorization is None else (("authorization", authorization),)

    assert await refusal_reason(stub.GetPayment(unknown_payment(), metadata=metadata)) == reason


async def test_a_token_signed_with_another_key_is_invalid(
    payment: RunningService, stub: Stub, tmp_path: Path
) -> None:
    impostor = AuthConfig(
        issuer=payment.auth.issuer,
        audience=payment.auth.audience,
        public_key_file=tmp_path / "impostor.pub",
        private_key_file=tmp_path / "impostor.pem",
        leeway_seconds=0,
    )
    ensure_keypair(impostor)
    token = mint(impostor, PrincipalKind.CITIZEN, CITIZEN)

    call = stub.GetPayment(unknown_payment(), metadata=(("authorization", f"Bearer {token}"),))
    assert await refusal_reason(call) == "TOKEN_INVALID"


def expired_token(payment: RunningService) -> str:
    return mint(
        payment.auth,
        PrincipalKind.CITIZEN,
        CITIZEN,
        ttl_seconds=60,
        not_before=datetime.now(UTC) - timedelta(hours=1),
    )


async def test_an_expired_token_is_refused(payment: RunningService, stub: Stub) -> None:
    call = stub.GetPayment(
        unknown_payment(), metadata=(("authorization", f"Bearer {expired_token(payment)}"),)
    )

    assert await refusal_reason(call) == "TOKEN_EXPIRED"


async def test_a_public_method_answers_without_a_token(stub: Stub) -> None:
    listing = await stub.ListServices(payment_service_pb2.ListServicesRequest())

    assert "state.duty.passport" in {service.code for service in listing.services}


@pytest.mark.parametrize("bad", ["garbage", "expired"])
async def test_a_bad_token_sent_to_a_public_method_is_still_refused(
    payment: RunningService, stub: Stub, bad: str
) -> None:
    token = "abc.def.ghi" if bad == "garbage" else expired_token(payment)
    call = stub.ListServices(
        payment_service_pb2.ListServicesRequest(), metadata=(("authorization", f"Bearer {token}"),)
    )

    assert await refusal_reason(call) == ("TOKEN_MALFORMED" if bad == "garbage" else "TOKEN_EXPIRED")


async def test_health_watch_answers_without_a_token_and_refuses_a_bad_one(payment: RunningService) -> None:
    health = health_stub(payment.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()

    with_bad_token = health.Watch(
        health_pb2.HealthCheckRequest(service=SERVICE_NAME),
        metadata=(("authorization", "Bearer abc.def.ghi"),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await with_bad_token.read()
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await error_info(with_bad_token)).reason == "TOKEN_MALFORMED"


# --- Cost per call -------------------------------------------------------------------------------


class _CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


async def test_the_interceptor_binds_a_method_once_and_reuses_it_on_later_calls(
    payment: RunningService,
) -> None:
    """Wrapping a handler and looking up its metric children on every call costs CPU on the hot
    path: the wrapped handler is made on the first call and handed out again after."""

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(echo)

    async def continuation(details: grpc.HandlerCallDetails) -> Any:
        return handler

    interceptor = ServiceInterceptor("test", payment.server.verifier, CollectorRegistry())
    first = await interceptor.intercept_service(continuation, _CallDetails("/test.v1.Echo/Echo"))
    again = await interceptor.intercept_service(continuation, _CallDetails("/test.v1.Echo/Echo"))
    other = await interceptor.intercept_service(continuation, _CallDetails("/test.v1.Echo/Other"))

    assert first is again
    assert first is not handler
    assert other is not first


def test_made_request_ids_are_random_uuid4_text_as_uuid_writes_them() -> None:
    made = [new_correlation_id() for _ in range(2000)]

    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text  # lower case, hyphens where uuid puts them
    # Every digit but the version's varies: no position is stuck.
    for position in range(36):
        if position not in (8, 13, 14, 18, 23):
            assert len({text[position] for text in made}) > 1, position
