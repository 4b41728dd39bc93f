"""The verification code: Ed25519 over the visa's facts, checkable offline with the public key
that GetVerificationKey serves; any changed byte of the code fails the check."""

from __future__ import annotations

import base64
import os
import stat
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from asan.visa.v1 import visa_service_pb2
from services.runtime.config import ConfigError
from services.visa.signing import CodeRejected, SignedVisa, VisaSigner, load_or_create_key, verify_code
from tests.support.servers import RunningService
from tests.visa.builders import visa_stub


def _facts(signer: VisaSigner) -> SignedVisa:
    return SignedVisa(
        key_id=signer.key_id,
        visa_number="AZ-EV-26-7K3P9QXM",
        passport_number="C01X00T47",
        nationality="DEU",
        name="SCHNEIDER ANNA MARIA",
        date_of_birth=date(1990, 4, 17),
        valid_from=date(2026, 4, 1),
        valid_until=date(2026, 6, 29),
        stay_days=30,
        entries=1,
    )


@pytest.fixture
def signer(tmp_path: Path) -> VisaSigner:
    return VisaSigner(load_or_create_key(tmp_path / "keys" / "visa.pem"))


def _raw(code: str) -> bytes:
    return base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))


def _code(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_signed_code_verifies_to_the_facts_it_was_made_from(signer: VisaSigner) -> None:
    facts = _facts(signer)
    assert signer.verify(signer.sign(facts)) == facts


def test_changing_any_byte_of_the_code_fails_the_signature(signer: VisaSigner) -> None:
    raw = _raw(signer.sign(_facts(signer)))
    for index in range(len(raw)):
        for flip in (0x01, 0x80):
            changed = bytearray(raw)
            changed[index] ^= flip
            with pytest.raises(CodeRejected):
                signer.verify(_code(bytes(changed)))


def test_a_truncated_or_extended_code_or_garbage_fails(signer: VisaSigner) -> None:
    raw = _raw(signer.sign(_facts(signer)))
    for bad in (_code(raw[:-1]), _code(raw + b"\0"), _code(raw[:64]), "not base64 at all!", ""):
        with pytest.raises(CodeRejected):
            signer.verify(bad)


def test_a_code_of_another_key_fails(signer: VisaSigner, tmp_path: Path) -> None:
    other = VisaSigner(load_or_create_key(tmp_path / "other.pem"))
    with pytest.raises(CodeRejected):
        signer.verify(other.sign(_facts(other)))


def test_the_key_is_made_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "visa.pem"
    first = VisaSigner(load_or_create_key(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert VisaSigner(load_or_create_key(path)).key_id == first.key_id


async def test_a_border_post_checks_a_code_offline_with_the_served_public_key(visa: RunningService) -> None:
    key = await visa_stub(visa).GetVerificationKey(visa_service_pb2.GetVerificationKeyRequest())
    assert key.algorithm == "Ed25519"
    public_key = load_pem_public_key(key.public_key_pem.encode())
    assert isinstance(public_key, Ed25519PublicKey)
    server_signer = VisaSigner.from_env()  # the same key file as the server's (ASAN_VAR_DIR)
    assert server_signer.key_id == key.key_id
    code = server_signer.sign(_facts(server_signer))
    assert verify_code(public_key, code).passport_number == "C01X00T47"


def test_a_configured_signing_key_that_is_missing_is_an_error_not_a_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "mounted" / "private.pem"
    monkeypatch.setenv("VISA_SIGNING_KEY_FILE", str(missing))
    with pytest.raises(ConfigError, match="VISA_SIGNING_KEY_FILE"):
        VisaSigner.from_env()
    assert not missing.exists()
