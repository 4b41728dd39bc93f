"""The verification code: Ed25519 over the visa's facts, checkable offline with the public key
that GetVerificationKey serves; any changed byte of the code fails the check."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy.orm import Session

from asan.visa.v1 import visa_pb2, visa_service_pb2
from services.runtime import signing
from services.runtime.config import ConfigError
from services.runtime.db import utcnow
from services.visa import decisions, queries
from services.visa.signing import CodeRejected, SignedVisa, VisaSigner, verify_code
from tests.payment.builders import new_request_id
from tests.support.servers import RunningService
from tests.visa.builders import (
    applicant,
    application,
    bearer,
    create_request,
    in_database,
    officer,
    pay,
    rejected,
    visa_service,
    visa_stub,
)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Visa's signing key as the service loads it (the runtime's loader, visa's setting)."""
    return signing.load_or_create_key(path, "VISA_SIGNING_KEY_FILE")


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


# --- Rotating the key --------------------------------------------------------------------------


def test_after_a_rotation_the_new_key_signs_and_codes_of_both_keys_verify(tmp_path: Path) -> None:
    old = VisaSigner(load_or_create_key(tmp_path / "old.pem"))
    issued_before = old.sign(_facts(old))

    rotated = VisaSigner(load_or_create_key(tmp_path / "new.pem"), retired=[old.public_key])
    issued_after = rotated.sign(_facts(rotated))

    assert rotated.verify(issued_before).key_id == old.key_id
    assert rotated.verify(issued_after).key_id == rotated.key_id != old.key_id
    with pytest.raises(ValueError, match="only the current key"):
        rotated.sign(_facts(old))  # a retired key signs nothing any more
    with pytest.raises(CodeRejected):
        VisaSigner(load_or_create_key(tmp_path / "new.pem")).verify(issued_before)  # once it is dropped


def test_a_code_naming_a_kept_key_but_signed_by_another_fails(tmp_path: Path) -> None:
    old = VisaSigner(load_or_create_key(tmp_path / "old.pem"))
    forger = VisaSigner(load_or_create_key(tmp_path / "forger.pem"))
    rotated = VisaSigner(load_or_create_key(tmp_path / "new.pem"), retired=[old.public_key])
    payload = _facts(old).payload()
    forged = _code(payload + _raw(forger.sign(_facts(forger)))[-64:])

    with pytest.raises(CodeRejected):
        rotated.verify(forged)


def test_retired_keys_are_read_from_their_directory_as_public_or_private_pems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retired = tmp_path / "retired"
    retired.mkdir()
    first = VisaSigner(load_or_create_key(retired / "2025-11.pem"))  # a private key, moved aside
    second = VisaSigner(load_or_create_key(tmp_path / "2026-05-private.pem"))
    (retired / "2026-05.pem").write_text(second.public_key_pem())
    monkeypatch.setenv("VISA_SIGNING_KEY_FILE", str(load_or_create_key_path(tmp_path / "current.pem")))
    monkeypatch.setenv("VISA_RETIRED_KEYS_DIR", str(retired))

    signer = VisaSigner.from_env()

    assert sorted(signer.verification_keys) == sorted([first.key_id, second.key_id, signer.key_id])
    for old in (first, second):
        assert signer.verify(old.sign(_facts(old))).key_id == old.key_id
    (retired / "broken.pem").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="VISA_RETIRED_KEYS_DIR"):
        VisaSigner.from_env()


def load_or_create_key_path(path: Path) -> Path:
    load_or_create_key(path)
    return path


async def test_e_visas_issued_before_a_rotation_still_pass_the_border_after_it(
    payment: RunningService,
    database_backend: str,
    new_database_url: Callable[[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Issue, rotate (the new key mounted, the old one moved to the retired keys), restart:
    the border accepts the codes of both keys, new e-visas carry the new key, and the old
    key's codes are refused once it is dropped."""
    visa_url = new_database_url(database_backend, "visa")
    keys = tmp_path / "visa-keys"
    monkeypatch.setenv("VISA_SIGNING_KEY_FILE", str(load_or_create_key_path(keys / "2026-05.pem")))
    monkeypatch.setenv("VISA_RETIRED_KEYS_DIR", str(keys / "retired"))
    async with visa_service(visa_url, payment.address, monkeypatch) as visa:
        before = await _issued(visa, payment, "C01X00T47")

    (keys / "retired").mkdir()
    (keys / "2026-05.pem").rename(keys / "retired" / "2026-05.pem")
    monkeypatch.setenv("VISA_SIGNING_KEY_FILE", str(load_or_create_key_path(keys / "2026-11.pem")))
    async with visa_service(visa_url, payment.address, monkeypatch) as visa:
        after = await _issued(visa, payment, "D99Y00001")
        served = await visa_stub(visa).GetVerificationKey(visa_service_pb2.GetVerificationKeyRequest())
        for evisa in (before, after):
            checked = await visa_stub(visa).VerifyVisa(
                _verify_code(evisa), metadata=bearer("officer", "dsx-post-alat-7", "DSX")
            )
            assert checked.result == visa_pb2.VERIFICATION_RESULT_VALID
        assert _signed_by(after) == served.key_id != _signed_by(before)

    (keys / "retired" / "2026-05.pem").unlink()  # after the last e-visa it signed has expired
    async with visa_service(visa_url, payment.address, monkeypatch) as visa:
        refused = await rejected(
            visa_stub(visa).VerifyVisa(
                _verify_code(before), metadata=bearer("officer", "dsx-post-alat-7", "DSX")
            )
        )
        assert refused.violations == {"verification_code": "SIGNATURE_INVALID"}


async def _issued(visa: RunningService, payment: RunningService, passport: str) -> visa_pb2.EVisa:
    """An e-visa issued by an officer on a paid URGENT application."""
    created = await visa_stub(visa).CreateApplication(create_request(application(applicant(passport))))
    await pay(payment, created)
    number = created.application.application_number
    signer = VisaSigner.from_env()

    def submit(session: Session) -> None:  # PaymentSucceeded, as the worker applies it
        row = queries.application_by_number(session, number, for_update=True)
        assert row is not None
        decisions.submit(session, row, utcnow(), sandbox=False, signer=signer)

    in_database(visa, submit)
    decided = await visa_stub(visa).ApproveApplicant(
        visa_service_pb2.ApproveApplicantRequest(
            request_id=new_request_id(), application_number=number, passport_number=passport
        ),
        metadata=officer(),
    )
    return decided.applicants[0].evisa


def _verify_code(evisa: visa_pb2.EVisa) -> visa_service_pb2.VerifyVisaRequest:
    return visa_service_pb2.VerifyVisaRequest(
        request_id=new_request_id(),
        passport_number=evisa.passport_number,
        verification_code=evisa.verification_code,
    )


def _signed_by(evisa: visa_pb2.EVisa) -> str:
    return SignedVisa.from_payload(_raw(evisa.verification_code)[:-64]).key_id
