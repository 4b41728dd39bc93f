"""Certificates made in the test, as cert-manager would issue them: an authority, and per
process of the suite a certificate naming it (URI SAN spiffe://asan.gov.az/service/<name>,
DNS SAN <name>, and 127.0.0.1 for the tests' own addresses), for server and client use, in
a folder of cert-manager's layout (tls.crt, tls.key, ca.crt)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.runtime.config import DEFAULT_TRUST_DOMAIN, TlsConfig
from services.runtime.tls import identity_uri


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, PEM."""

    certificate: bytes
    key: bytes

    @property
    def serial(self) -> int:
        return x509.load_pem_x509_certificate(self.certificate).serial_number

    @property
    def der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.certificate).public_bytes(serialization.Encoding.DER)


class Authority:
    """A certificate authority of its own (cert-manager's CA Issuer)."""

    def __init__(self, name: str = "asan-internal-ca") -> None:
        self._key = _key()
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, name: str, *, identity: bool = True) -> Issued:
        """A certificate for the process `name`; without `identity`, one that names no service
        of the suite (a DNS name only)."""
        key = _key()
        now = datetime.now(UTC)
        names: list[x509.GeneralName] = [
            x509.DNSName(name),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        if identity:
            names.append(x509.UniformResourceIdentifier(identity_uri(DEFAULT_TRUST_DOMAIN, name)))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return Issued(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def mount(
        self, folder: Path, name: str, *, identity: bool = True, reload_seconds: float = 0.0
    ) -> TlsConfig:
        """Writes a new certificate for `name` into `folder` (cert-manager's layout) and returns
        the TLS settings that read it; writing again over the same folder is a rotation."""
        write(folder, self.issue(name, identity=identity), self.pem)
        return TlsConfig.in_folder(folder, reload_seconds=reload_seconds)


def write(folder: Path, issued: Issued, authority: bytes, *, key: bytes | None = None) -> None:
    """Replaces each file at once (a rename, as the kubelet's symlink swap does), key first."""
    folder.mkdir(parents=True, exist_ok=True)
    for file, content in (
        ("tls.key", key or issued.key),
        ("tls.crt", issued.certificate),
        ("ca.crt", authority),
    ):
        fresh = folder / f".{file}.new"
        fresh.write_bytes(content)
        os.replace(fresh, folder / file)
