"""The e-visa's verification code: a payload signed with the service's Ed25519 key, so that a
border post can check it offline with the public key (GetVerificationKey).

    code = base64url(payload || signature)     (no padding; the signature is the last 64 bytes)
    payload = "AZEV1|<key id>|<visa number>|<passport>|<nationality>|<name>|<date of birth>|
               <valid from>|<valid until>|<stay days>|<entries>"     (UTF-8, dates YYYY-MM-DD)

The key lives in VISA_SIGNING_KEY_FILE (PEM, PKCS#8); on a developer's machine it is made
on first use under ASAN_VAR_DIR/keys, like the token keys. In production it is mounted.

Keys rotate: each code names the key that signed it (the payload's key id), and a code is
checked with that key. After a rotation the new key signs, and the retired keys, whose public
halves are kept in VISA_RETIRED_KEYS_DIR, only verify: the codes already issued stay valid until
their e-visas expire (at most 180 days after the rotation: an arrival up to 90 days ahead, then
90 days of validity), after which a retired key can go (deploy/k8s/RUNBOOK.md).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.runtime.config import ConfigError, env_str, var_dir
from services.runtime.signing import key_id, load_or_create_key, public_key_pem

FORMAT = "AZEV1"
SIGNATURE_LENGTH = 64
SEPARATOR = "|"
FIELD_COUNT = 11


@dataclass(frozen=True)
class SignedVisa:
    """What the code vouches for."""

    key_id: str
    visa_number: str
    passport_number: str
    nationality: str
    name: str
    date_of_birth: date
    valid_from: date
    valid_until: date
    stay_days: int
    entries: int

    def payload(self) -> bytes:
        fields = [
            FORMAT,
            self.key_id,
            self.visa_number,
            self.passport_number,
            self.nationality,
            self.name,
            self.date_of_birth.isoformat(),
            self.valid_from.isoformat(),
            self.valid_until.isoformat(),
            str(self.stay_days),
            str(self.entries),
        ]
        if any(SEPARATOR in field for field in fields):
            raise ValueError("a signed field contains the separator")
        return SEPARATOR.join(fields).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> SignedVisa:
        fields = payload.decode().split(SEPARATOR)
        if len(fields) != FIELD_COUNT or fields[0] != FORMAT:
            raise ValueError("not an AZEV1 payload")
        return cls(
            key_id=fields[1],
            visa_number=fields[2],
            passport_number=fields[3],
            nationality=fields[4],
            name=fields[5],
            date_of_birth=date.fromisoformat(fields[6]),
            valid_from=date.fromisoformat(fields[7]),
            valid_until=date.fromisoformat(fields[8]),
            stay_days=int(fields[9]),
            entries=int(fields[10]),
        )


class CodeRejected(ValueError):
    """The code is not one of our keys signed, or was changed after signing."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VisaSigner:
    """Signs with the current key; verifies with it and with the retired keys still kept."""

    def __init__(self, private_key: Ed25519PrivateKey, retired: Iterable[Ed25519PublicKey] = ()) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)
        self.verification_keys = {key_id(key): key for key in retired}
        self.verification_keys[self.key_id] = self.public_key
        # Asked for on every GetSigningKey: encoded once.
        self._public_key_pem = public_key_pem(self.public_key)

    def public_key_pem(self) -> str:
        return self._public_key_pem

    def sign(self, visa: SignedVisa) -> str:
        if visa.key_id != self.key_id:
            raise ValueError(f"the payload names key {visa.key_id}; only the current key {self.key_id} signs")
        payload = visa.payload()
        return _b64encode(payload + self._private_key.sign(payload))

    def verify(self, code: str) -> SignedVisa:
        """The signed facts of `code`, checked with the key it names: the current one or a
        retired one still kept. CodeRejected otherwise."""
        payload, _ = _split(code)
        try:
            named = SignedVisa.from_payload(payload).key_id
        except (ValueError, UnicodeDecodeError):
            raise CodeRejected("not an AZEV1 payload") from None
        key = self.verification_keys.get(named)
        if key is None:
            raise CodeRejected("signed with a key that is not ours, or no longer kept")
        return verify_code(key, code)

    @classmethod
    def from_env(cls) -> VisaSigner:
        """The key named by VISA_SIGNING_KEY_FILE, which must exist (a deployed key: a new one
        per pod would make e-visas that border posts cannot check); without the variable, a
        development key under the var directory, made on first use. The retired keys are the
        `*.pem` files of VISA_RETIRED_KEYS_DIR (by default ASAN_VAR_DIR/keys/visa_retired)."""
        configured = env_str("VISA_SIGNING_KEY_FILE", "")
        if configured:
            path = Path(configured)
            if not path.is_file():
                raise ConfigError(f"VISA_SIGNING_KEY_FILE names {path}, which does not exist")
        else:
            path = var_dir() / "keys" / "visa_signing_ed25519.pem"
        retired = Path(env_str("VISA_RETIRED_KEYS_DIR", "") or var_dir() / "keys" / "visa_retired")
        return cls(load_or_create_key(path, "VISA_SIGNING_KEY_FILE"), retired_keys(retired))


def retired_keys(directory: Path) -> list[Ed25519PublicKey]:
    """The public keys of the `*.pem` files in `directory` (none if it does not exist): public
    keys, or retired private keys, of which only the public half is used."""
    if not directory.is_dir():
        return []
    keys = []
    for file in sorted(directory.glob("*.pem")):  # a Secret's volume keeps its own files in ..dirs
        pem = file.read_bytes()
        key: object
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError:
            try:
                key = serialization.load_pem_private_key(pem, password=None).public_key()
            except (ValueError, TypeError):
                key = None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{file} (VISA_RETIRED_KEYS_DIR) is not an Ed25519 key in PEM")
        keys.append(key)
    return keys


def _split(code: str) -> tuple[bytes, bytes]:
    try:
        raw = _b64decode(code.strip())
    except (binascii.Error, ValueError):
        raise CodeRejected("not base64url") from None
    if len(raw) <= SIGNATURE_LENGTH:
        raise CodeRejected("too short")
    return raw[:-SIGNATURE_LENGTH], raw[-SIGNATURE_LENGTH:]


def verify_code(public_key: Ed25519PublicKey, code: str) -> SignedVisa:
    """The signed facts of `code`, checked with `public_key`; CodeRejected if any byte differs
    from what was signed."""
    payload, signature = _split(code)
    try:
        public_key.verify(signature, payload)
        return SignedVisa.from_payload(payload)
    except (InvalidSignature, ValueError):
        raise CodeRejected("signature does not match") from None
