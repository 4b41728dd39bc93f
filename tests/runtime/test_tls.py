"""TLS on a service's gRPC port (services.runtime.tls): the real payment server with
certificates made here, and callers with certificates of their own, of another authority,
of a service it does not take calls from, or none at all."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from asan.payment.v1 import payment_service_pb2, payment_service_pb2_grpc
from services.payment.service import definition
from services.runtime.config import ConfigError, ServiceConfig, TlsConfig
from services.runtime.server import ServiceServer
from services.runtime.tls import ReloadingChannel, open_channel
from services.runtime.tokens import ensure_keypair
from tests.runtime.serversupport import SERVING, error_info, health_stub, refused
from tests.support.certificates import Authority, Issued, write
from tests.support.servers import RunningService, running_service
from tests.support.servers import test_config as base_config

LIST_SERVICES = payment_service_pb2.ListServicesRequest(page_size=1)


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.fixture
def mount(authority: Authority, tmp_path: Path) -> Callable[..., TlsConfig]:
    """Writes a certificate of the suite's authority for a process into a folder of its own."""

    def make(name: str, *, identity: bool = True, folder: str | None = None) -> TlsConfig:
        return authority.mount(tmp_path / (folder or name), name, identity=identity)

    return make


def tls_config(
    database_url: str, tls: TlsConfig, callers: frozenset[str] = frozenset({"gateway"})
) -> ServiceConfig:
    return dataclasses.replace(base_config(definition, database_url), tls=tls, allowed_callers=callers)


@asynccontextmanager
async def payment_with_tls(
    new_database_url: Callable[[str, str], str], tls: TlsConfig, client: TlsConfig | None = None
) -> AsyncIterator[RunningService]:
    database_url = new_database_url("sqlite", "payment")
    async with running_service(definition, database_url, tls_config(database_url, tls), client) as service:
        yield service


def list_services(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryCall[object, object]:
    stub: object = payment_service_pb2_grpc.PaymentServiceStub(channel)
    return stub.ListServices(LIST_SERVICES, timeout=5)  # type: ignore[attr-defined,no-any-return]


def presented_certificate(port: int, client: TlsConfig) -> bytes:
    """The certificate (DER) that the server presents to a new TLS connection now."""
    context = ssl.create_default_context(cafile=str(client.authority_file))
    context.load_cert_chain(client.certificate_file, client.private_key_file)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="payment") as connection,
    ):
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return der


# --- who is served ------------------------------------------------------------------------------


async def test_a_caller_with_the_certificate_of_a_service_allowed_to_call_is_served(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig]
) -> None:
    async with payment_with_tls(new_database_url, mount("payment"), mount("gateway")) as payment:
        response = await list_services(payment.channel)
        assert response.services  # type: ignore[attr-defined]
        health = await health_stub(payment.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == SERVING


async def test_a_plaintext_client_is_refused(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig]
) -> None:
    async with (
        payment_with_tls(new_database_url, mount("payment")) as payment,
        grpc.aio.insecure_channel(payment.address) as plaintext,
    ):
        error = await refused(list_services(plaintext))
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # no handshake: no call at all


async def test_a_client_without_a_certificate_is_refused(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig], authority: Authority
) -> None:
    server_only = grpc.ssl_channel_credentials(root_certificates=authority.pem)  # verifies, shows nothing
    async with (
        payment_with_tls(new_database_url, mount("payment")) as payment,
        grpc.aio.secure_channel(payment.address, server_only) as anonymous,
    ):
        error = await refused(list_services(anonymous))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_with_a_certificate_of_another_authority_is_refused(
    new_database_url: Callable[[str, str], str],
    mount: Callable[..., TlsConfig],
    authority: Authority,
    tmp_path: Path,
) -> None:
    impostor = Authority("impostor-ca")
    # The gateway's name, signed by an authority payment does not trust (and which trusts
    # payment's, so that only the server's check can refuse it).
    folder = tmp_path / "impostor"
    write(folder, impostor.issue("gateway"), impostor.pem + authority.pem)
    async with payment_with_tls(new_database_url, mount("payment"), TlsConfig.in_folder(folder)) as payment:
        error = await refused(list_services(payment.channel))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_valid_certificate_of_a_service_not_allowed_to_call_is_refused_with_its_name(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig]
) -> None:
    async with payment_with_tls(new_database_url, mount("payment"), mount("agro")) as payment:
        call = list_services(payment.channel)
        error = await refused(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.details() == "This service takes no calls from agro."
        info = await error_info(call)
        assert info.reason == "CALLER_NOT_ALLOWED"
        # Health and reflection too: only the allowed callers learn anything from the port.
        health = await refused(health_stub(payment.channel).Check(health_pb2.HealthCheckRequest(), timeout=5))
        assert health.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_certificate_that_names_no_service_of_the_suite_is_refused(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig]
) -> None:
    # Signed by the right authority, with the DNS name "gateway" but no identity URI.
    nameless = mount("gateway", identity=False)
    async with payment_with_tls(new_database_url, mount("payment"), nameless) as payment:
        error = await refused(list_services(payment.channel))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "The client certificate names no service of the suite."


async def test_the_client_refuses_a_server_its_authority_did_not_sign(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig], tmp_path: Path
) -> None:
    own = mount("gateway")
    elsewhere = Authority("elsewhere-ca").mount(tmp_path / "elsewhere", "payment")
    async with (
        payment_with_tls(new_database_url, elsewhere) as payment,
        open_channel(payment.address, own) as channel,
    ):
        error = await refused(list_services(channel))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


# --- rotation -----------------------------------------------------------------------------------


async def test_a_rotated_server_certificate_is_presented_to_new_connections_while_old_ones_serve_on(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig], authority: Authority
) -> None:
    server_tls, client_tls = mount("payment"), mount("gateway")
    first = server_tls.certificate_file.read_bytes()
    async with payment_with_tls(new_database_url, server_tls, client_tls) as payment:
        await list_services(payment.channel)  # a connection made with the first certificate
        before = await asyncio.to_thread(presented_certificate, payment.server.port, client_tls)
        assert before == Issued(first, b"").der

        renewed = authority.issue("payment")
        write(server_tls.certificate_file.parent, renewed, authority.pem)

        await list_services(payment.channel)  # the connection made before goes on
        after = await asyncio.to_thread(presented_certificate, payment.server.port, client_tls)
        assert after == renewed.der != before
        async with open_channel(payment.address, client_tls) as fresh:
            await list_services(fresh)
        assert payment.server.certificates is not None and payment.server.certificates.reloads == 1


async def test_a_half_written_rotation_keeps_the_certificate_that_works(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig], authority: Authority
) -> None:
    server_tls, client_tls = mount("payment"), mount("gateway")
    first = server_tls.certificate_file.read_bytes()
    old_key = server_tls.private_key_file.read_bytes()
    async with payment_with_tls(new_database_url, server_tls, client_tls) as payment:
        # The new certificate is there, its key not yet.
        write(server_tls.certificate_file.parent, authority.issue("payment"), authority.pem, key=old_key)
        async with open_channel(payment.address, client_tls) as fresh:
            await list_services(fresh)
        served = await asyncio.to_thread(presented_certificate, payment.server.port, client_tls)
        assert served == Issued(first, b"").der
        assert payment.server.certificates is not None
        assert payment.server.certificates.reloads == 0 and payment.server.certificates.refused_reloads >= 1


async def test_a_client_channel_presents_its_renewed_certificate_without_being_made_again(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig], authority: Authority
) -> None:
    # The client's folder first holds a certificate that payment refuses (agro's), then the
    # gateway's: the same channel object must present the new one.
    client_tls = mount("agro", folder="client")
    async with (
        payment_with_tls(new_database_url, mount("payment")) as payment,
        open_channel(payment.address, client_tls) as channel,
    ):
        assert isinstance(channel, ReloadingChannel)
        assert (await refused(list_services(channel))).code() == grpc.StatusCode.PERMISSION_DENIED
        write(client_tls.certificate_file.parent, authority.issue("gateway"), authority.pem)
        await list_services(channel)
        assert channel.reloads == 1


# --- configuration, start-up, probes ------------------------------------------------------------


def test_tls_is_on_unless_switched_off_and_reads_cert_manager_s_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ASAN_TLS")
    tls = TlsConfig.from_env()
    assert tls == TlsConfig(
        Path("/etc/asan/tls/tls.crt"), Path("/etc/asan/tls/tls.key"), Path("/etc/asan/tls/ca.crt")
    )
    monkeypatch.setenv("ASAN_TLS_DIR", "/mnt/certs")
    monkeypatch.setenv("ASAN_TLS_CA_FILE", "/mnt/bundle/ca.pem")
    tls = TlsConfig.from_env()
    assert tls is not None and tls.private_key_file == Path("/mnt/certs/tls.key")
    assert tls.authority_file == Path("/mnt/bundle/ca.pem")
    monkeypatch.setenv("ASAN_TLS", "off")
    assert TlsConfig.from_env() is None
    monkeypatch.setenv("ASAN_TLS", "maybe")
    with pytest.raises(ConfigError, match="ASAN_TLS"):
        TlsConfig.from_env()


def test_the_allowed_callers_are_the_gateway_unless_the_service_names_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ServiceConfig.from_env("payment", 1, 2).allowed_callers == {"gateway"}
    monkeypatch.setenv("PAYMENT_ALLOWED_CALLERS", "gateway, visa,appeals")
    assert ServiceConfig.from_env("payment", 1, 2).allowed_callers == {"gateway", "visa", "appeals"}


def test_a_server_with_tls_on_and_no_certificate_refuses_to_start(tmp_path: Path) -> None:
    missing = TlsConfig.in_folder(tmp_path / "nothing-mounted")
    config = tls_config(f"sqlite:///{tmp_path / 'payment.sqlite3'}", missing)
    ensure_keypair(config.auth)
    with pytest.raises(ConfigError, match="ASAN_TLS=off"):
        ServiceServer(definition, config)


async def test_probes_read_health_in_plaintext_on_the_probe_port_and_nothing_else(
    new_database_url: Callable[[str, str], str], mount: Callable[..., TlsConfig]
) -> None:
    database_url = new_database_url("sqlite", "payment")
    config = dataclasses.replace(tls_config(database_url, mount("payment")), probe_port=0)
    async with running_service(definition, database_url, config, mount("gateway")) as payment:
        assert payment.server.probe_port not in (0, payment.server.port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{payment.server.probe_port}") as probe:
            for name in ("", "liveness", "asan.payment.v1.PaymentService"):
                answer = await health_stub(probe).Check(
                    health_pb2.HealthCheckRequest(service=name), timeout=5
                )
                assert answer.status == SERVING, name
            error = await refused(list_services(probe))
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
