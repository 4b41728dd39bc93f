"""TLS on every gRPC hop of the suite, mutual between its own processes.

A service serves TLS with the certificate and key mounted in its pod (cert-manager's Secret
layout: `tls.crt`, `tls.key`, `ca.crt` in `ASAN_TLS_DIR`, or each file by its own variable)
and requires a client certificate signed by the same authority (`ca.crt`): its callers are
the gateway and other services, each with a certificate of its own. Plaintext only when
`ASAN_TLS=off` says so (`make run`, the tests); with TLS on and no certificate, a process
refuses to start rather than serve plaintext.

Who a caller is comes from its certificate: a URI SAN `spiffe://<trust domain>/service/<name>`
(`identity_uri`); the callee takes calls only from the names in `<SERVICE>_ALLOWED_CALLERS`
(the gateway by default), the same peers that its NetworkPolicy admits (tests/deploy holds
the two together).

Rotation: the server reads the files again before each TLS handshake and, when they changed
(and the new key pairs with the new certificate), handshakes from then on with the new ones
(`grpc.dynamic_ssl_server_credentials`). Established connections keep their session until
they end, at the latest after `ASAN_GRPC_MAX_CONNECTION_AGE_SECONDS`. A client channel
(`ReloadingChannel`) checks its files at most every `ASAN_TLS_RELOAD_SECONDS` and, when they
changed, opens a new channel for new calls and closes the old one after its calls finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services.runtime.config import ConfigError, TlsConfig

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger("asan.tls")

# How long a replaced client channel keeps serving the calls it started.
OLD_CHANNEL_GRACE_SECONDS = 30.0


def identity_uri(trust_domain: str, name: str) -> str:
    """The URI SAN that names a process of the suite: spiffe://asan.gov.az/service/payment."""
    return f"spiffe://{trust_domain}/service/{name}"


@dataclass(frozen=True)
class TlsMaterial:
    """The PEM bytes of one reading of the files."""

    certificate_chain: bytes
    private_key: bytes
    authority: bytes

    def key_pairs_with_certificate(self) -> bool:
        """Whether the key is the certificate's: a rotation caught half-written is not."""
        try:
            certificate = x509.load_pem_x509_certificate(self.certificate_chain)
            key = serialization.load_pem_private_key(self.private_key, password=None)
        except ValueError:
            return False
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        encoding = serialization.Encoding.DER
        return bool(
            certificate.public_key().public_bytes(encoding, public)
            == key.public_key().public_bytes(encoding, public)
        )


def read_material(config: TlsConfig) -> TlsMaterial:
    """The files as they are now; ConfigError naming the one that cannot be read."""
    contents = []
    for variable, path in (
        ("ASAN_TLS_CERT_FILE", config.certificate_file),
        ("ASAN_TLS_KEY_FILE", config.private_key_file),
        ("ASAN_TLS_CA_FILE", config.authority_file),
    ):
        try:
            contents.append(path.read_bytes())
        except OSError as error:
            raise ConfigError(
                f"TLS is on and {path} ({variable}) cannot be read: {error.strerror}. Mount the "
                "certificate (ASAN_TLS_DIR: tls.crt, tls.key, ca.crt) or set ASAN_TLS=off"
            ) from None
    return TlsMaterial(*contents)


def read_valid_material(config: TlsConfig) -> TlsMaterial:
    """As read_material, and the key must be the certificate's."""
    material = read_material(config)
    if not material.key_pairs_with_certificate():
        raise ConfigError(f"{config.private_key_file} is not the key of {config.certificate_file}")
    return material


# --- the server side ----------------------------------------------------------------------------


class ServerCertificates:
    """The server's certificate, read again before each handshake (module docstring)."""

    def __init__(self, config: TlsConfig) -> None:
        self.config = config
        self._loaded = read_valid_material(config)
        self._lock = threading.Lock()
        # How many times a changed certificate was taken up, and refused (half-written).
        self.reloads = 0
        self.refused_reloads = 0

    def credentials(self) -> grpc.ServerCredentials:
        """Server TLS that requires a client certificate signed by the configured authority."""
        # grpc's type stubs forget that the fetcher may answer None (keep the current one).
        fetch: Callable[[], grpc.ServerCertificateConfiguration] = self._fetch  # type: ignore[assignment]
        return grpc.dynamic_ssl_server_credentials(
            _server_configuration(self._loaded), fetch, require_client_authentication=True
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC's own threads before every handshake: None keeps the current one.
        with self._lock:
            try:
                material = read_material(self.config)
            except ConfigError as error:
                log.warning("keeping the certificate loaded: %s", error)
                return None
            if material == self._loaded:
                return None
            if not material.key_pairs_with_certificate():
                self.refused_reloads += 1
                log.warning("keeping the certificate loaded: the new key is not the new certificate's")
                return None
            self._loaded = material
            self.reloads += 1
            log.info("certificate reloaded", extra={"certificate_file": str(self.config.certificate_file)})
            return _server_configuration(material)


def _server_configuration(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.private_key, material.certificate_chain)], root_certificates=material.authority
    )


def caller_name(context: Context, trust_domain: str) -> str | None:
    """The service whose certificate the caller presented, or None (plaintext, or no identity
    of the suite's trust domain in it)."""
    prefix = identity_uri(trust_domain, "").encode()
    for name in context.auth_context().get("x509_subject_alternative_name", ()):
        if name.startswith(prefix) and b"/" not in name[len(prefix) :]:
            return name[len(prefix) :].decode()
    return None


@dataclass(frozen=True)
class CallerPolicy:
    """Who may call a service, by the names in their certificates."""

    trust_domain: str
    allowed: frozenset[str]

    def refusal(self, context: Context) -> str | None:
        """None when the caller may call; otherwise what to tell it."""
        caller = caller_name(context, self.trust_domain)
        if caller is None:
            return "The client certificate names no service of the suite."
        if caller not in self.allowed:
            return f"This service takes no calls from {caller}."
        return None


# --- the client side ----------------------------------------------------------------------------


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    """Verifies the server against the authority and presents this process's certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=material.authority,
        private_key=material.private_key,
        certificate_chain=material.certificate_chain,
    )


ChannelFactory = Callable[[grpc.ChannelCredentials], grpc.aio.Channel]


class ReloadingChannel(grpc.aio.Channel):
    """A TLS channel whose certificate follows its files: every call made through it checks, at
    most every `reload_seconds`, whether the files changed; then new calls go to a new channel
    with the new certificate, and the old one closes once its calls are done (or after
    OLD_CHANNEL_GRACE_SECONDS). Multi-callables made before a reload follow it (`unary_unary`
    returns one that asks for the current channel on each call)."""

    def __init__(self, config: TlsConfig, open_channel: ChannelFactory) -> None:
        self.config = config
        self._open = open_channel
        self._material = read_valid_material(config)
        self._channel = open_channel(channel_credentials(self._material))
        self._checked_at = time.monotonic()
        self._retiring: set[asyncio.Task[None]] = set()
        self.reloads = 0

    def current(self) -> grpc.aio.Channel:
        now = time.monotonic()
        if now - self._checked_at >= self.config.reload_seconds:
            self._checked_at = now
            self._reload_if_changed()
        return self._channel

    def _reload_if_changed(self) -> None:
        try:
            material = read_material(self.config)
        except ConfigError as error:
            log.warning("keeping the client certificate loaded: %s", error)
            return
        if material == self._material or not material.key_pairs_with_certificate():
            return
        old, self._material = self._channel, material
        self._channel = self._open(channel_credentials(material))
        self.reloads += 1
        log.info("client certificate reloaded", extra={"certificate_file": str(self.config.certificate_file)})
        task = asyncio.get_running_loop().create_task(old.close(OLD_CHANNEL_GRACE_SECONDS))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    # grpc.aio.Channel

    async def __aenter__(self) -> ReloadingChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(None)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Following(self, "unary_unary", method, args, kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Following(self, "unary_stream", method, args, kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Following(self, "stream_unary", method, args, kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Following(self, "stream_stream", method, args, kwargs)


class _Following:
    """A multi-callable of whichever channel is current when it is called (made once per
    channel, as a stub's are)."""

    def __init__(
        self, owner: ReloadingChannel, kind: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._owner = owner
        self._kind, self._method, self._args, self._kwargs = kind, method, args, kwargs
        self._channel: grpc.aio.Channel | None = None
        self._callable: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel = self._owner.current()
        if channel is not self._channel:
            make: Any = getattr(channel, self._kind)
            self._channel, self._callable = channel, make(self._method, *self._args, **self._kwargs)
        return self._callable(*args, **kwargs)


def open_channel(
    target: str,
    tls: TlsConfig | None,
    *,
    options: Collection[tuple[str, Any]] = (),
    interceptors: Collection[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A channel to a service of the suite: plaintext when TLS is off, else a ReloadingChannel
    that verifies the server against the authority and presents this process's certificate."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options), interceptors=list(interceptors))
    return ReloadingChannel(
        tls,
        lambda credentials: grpc.aio.secure_channel(
            target, credentials, options=list(options), interceptors=list(interceptors)
        ),
    )
