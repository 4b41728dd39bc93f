"""Ed25519 signatures a party checks offline: a service signs bytes with its key, and anyone
holding the public key (published by the service, named by its key id) verifies them.

    signer = Ed25519Signer.from_env("FINANCE_SIGNING_KEY_FILE", "finance_signing_ed25519.pem")
    signature = signer.sign(canonical_json({...}))
    verify_signature(signer.public_key_pem(), content, signature)   # anywhere, offline

The key lives in the named variable's file (PEM, PKCS#8), which must exist when the variable
is set (a deployed key: a new one per pod would sign what no one can check); without it, a
development key under ASAN_VAR_DIR/keys is made on first use. The key id is the first 16
characters of the base64url SHA-256 of the raw public key, as visa's codes name theirs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.runtime.config import ConfigError, env_str, var_dir

ALGORITHM = "Ed25519"


class SignatureRejected(ValueError):
    """The content was not signed by this key, or was changed after signing."""


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value that is signed and hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).decode()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The key as PEM (SubjectPublicKeyInfo), as GetSigningKey answers it."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class Ed25519Signer:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)
        # Asked for on every GetSigningKey: encoded once.
        self._public_key_pem = public_key_pem(self.public_key)

    def public_key_pem(self) -> str:
        return self._public_key_pem

    def sign(self, content: bytes) -> bytes:
        """The 64-byte signature of `content`."""
        return self._private_key.sign(content)

    @classmethod
    def from_env(cls, variable: str, development_file_name: str) -> Ed25519Signer:
        configured = env_str(variable, "")
        if configured:
            path = Path(configured)
            if not path.is_file():
                raise ConfigError(f"{variable} names {path}, which does not exist")
            return cls(load_or_create_key(path, variable))
        return cls(load_or_create_key(var_dir() / "keys" / development_file_name, variable))


def verify_signature(public_key_pem: str, content: bytes, signature: bytes) -> None:
    """Returns if `signature` is the key's signature of `content`; SignatureRejected otherwise."""
    try:
        public_key = serialization.load_pem_public_key(public_key_pem.encode())
    except ValueError:
        raise SignatureRejected("not a PEM public key") from None
    if not isinstance(public_key, Ed25519PublicKey):
        raise SignatureRejected("not an Ed25519 public key")
    try:
        public_key.verify(signature, content)
    except InvalidSignature:
        raise SignatureRejected("signature does not match") from None


def load_or_create_key(path: Path, variable: str) -> Ed25519PrivateKey:
    if not path.exists():
        _create_key(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} ({variable}) is not an unencrypted PEM Ed25519 private key")
    return key


def _create_key(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary name (0600 from the start), then linked into place: a
    # server and a worker starting together keep one key, and neither reads half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
