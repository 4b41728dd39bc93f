"""Access tokens: what the verifier accepts, and why it refuses the rest.

Every refusal is checked by the `reason` a client reads in ErrorInfo, not only by the
exception type. Keys and tokens are real: RS256 with a key pair made for this module.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.rpc import error_details_pb2

from services.runtime.auth import (
    InvalidPrincipal,
    Principal,
    PrincipalKind,
    TokenVerifier,
    VerificationKeys,
    bearer_token,
)
from services.runtime.config import AuthConfig, ConfigError
from services.runtime.errors import Unauthenticated
from services.runtime.tokens import ensure_keypair, mint
from services.runtime.tokens import jwks as tokens_jwks

ISSUER = "https://login.asan.test"
AUDIENCE = "asan-services-test"
FIN = "1AB2C3D"


def auth_config(directory: Path, leeway_seconds: int = 30) -> AuthConfig:
    return AuthConfig(
        issuer=ISSUER,
        audience=AUDIENCE,
        public_key_file=directory / "public.pem",
        private_key_file=directory / "private.pem",
        leeway_seconds=leeway_seconds,
    )


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> AuthConfig:
    # One key pair for the module: RSA generation is the slow part of these tests.
    config = auth_config(tmp_path_factory.mktemp("keys"))
    ensure_keypair(config)
    return config


@pytest.fixture
def verifier(cfg: AuthConfig) -> TokenVerifier:
    return TokenVerifier.from_config(cfg)


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid citizen claims; an override of None removes the claim."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": FIN,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "test-token",
        "asan_kind": "citizen",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def sign(cfg: AuthConfig, payload: dict[str, Any], algorithm: str = "RS256") -> str:
    return jwt.encode(payload, cfg.private_key_file.read_bytes(), algorithm=algorithm)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(payload: dict[str, Any]) -> str:
    """A token with `alg: none` and no signature, as an attacker would send it."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(payload).encode())}."


def rejection(verifier: TokenVerifier, token: str) -> str:
    """The reason the verifier gives for refusing `token`."""
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token)
    return refused.value.reason


# What is accepted


def test_citizen_token_names_the_citizen_by_fin(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    principal = verifier.verify(mint(cfg, PrincipalKind.CITIZEN, FIN))

    assert principal == Principal(kind=PrincipalKind.CITIZEN, subject=FIN)
    assert principal.is_citizen
    assert principal.fin == FIN


def test_officer_token_carries_the_agency(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    principal = verifier.verify(mint(cfg, PrincipalKind.OFFICER, "officer-17", agency_code="DMX"))

    assert principal.is_officer
    assert principal.agency_code == "DMX"
    assert principal.fin is None


def test_service_token_carries_the_agency_of_the_calling_service(
    cfg: AuthConfig, verifier: TokenVerifier
) -> None:
    principal = verifier.verify(mint(cfg, PrincipalKind.SERVICE, "visa", agency_code="DMX"))

    assert principal.is_service
    assert (principal.subject, principal.agency_code) == ("visa", "DMX")


def test_bank_token_carries_the_institution(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    principal = verifier.verify(mint(cfg, PrincipalKind.BANK, "gateway", institution_code="KAPITALBANK"))

    assert principal.is_bank
    assert principal.institution_code == "KAPITALBANK"
    assert principal.agency_code is None


def test_admin_token_is_accepted(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    principal = verifier.verify(mint(cfg, PrincipalKind.ADMIN, "root-operator"))

    assert principal.is_admin
    assert not (principal.is_citizen or principal.is_officer or principal.is_bank or principal.is_service)


def test_token_expired_within_the_leeway_is_accepted(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    now = int(time.time())
    token = sign(cfg, claims(iat=now - 600, nbf=now - 600, exp=now - cfg.leeway_seconds // 2))

    assert verifier.verify(token).fin == FIN


def test_authorization_metadata_is_authenticated_end_to_end(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    token = mint(cfg, PrincipalKind.CITIZEN, FIN)

    assert verifier.authenticate(f"Bearer {token}").fin == FIN


# Forged and foreign tokens


def test_token_signed_with_none_algorithm_is_rejected(verifier: TokenVerifier) -> None:
    token = unsigned_token(claims())

    assert rejection(verifier, token) == "TOKEN_INVALID"


def test_hs256_token_signed_with_public_key_is_rejected(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    # The classic algorithm confusion: the public key is no secret, so an attacker can
    # HMAC-sign with it. PyJWT refuses to do that, hence the token is built by hand.
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims()).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(cfg.public_key_file.read_bytes(), signing_input, hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64url(signature)}"

    assert rejection(verifier, token) == "TOKEN_INVALID"


def test_token_signed_with_another_rsa_algorithm_is_rejected(
    cfg: AuthConfig, verifier: TokenVerifier
) -> None:
    assert rejection(verifier, sign(cfg, claims(), algorithm="RS512")) == "TOKEN_INVALID"


def test_token_from_another_key_pair_is_rejected(tmp_path: Path, verifier: TokenVerifier) -> None:
    stranger = auth_config(tmp_path / "stranger")
    ensure_keypair(stranger)

    assert rejection(verifier, mint(stranger, PrincipalKind.CITIZEN, FIN)) == "TOKEN_INVALID"


def test_token_with_a_changed_payload_is_rejected(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    header, _, signature = mint(cfg, PrincipalKind.CITIZEN, FIN).split(".")
    other_citizen = b64url(json.dumps(claims(sub="7ZZ9Y8X")).encode())

    assert rejection(verifier, f"{header}.{other_citizen}.{signature}") == "TOKEN_INVALID"


# Time


def test_expired_token_is_rejected(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    now = int(time.time())
    token = sign(cfg, claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600))

    assert rejection(verifier, token) == "TOKEN_EXPIRED"


def test_token_not_yet_valid_is_rejected(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    token = mint(cfg, PrincipalKind.CITIZEN, FIN, not_before=datetime.now(UTC) + timedelta(hours=1))

    assert rejection(verifier, token) == "TOKEN_NOT_YET_VALID"


def test_token_issued_in_the_future_is_rejected(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    now = int(time.time())

    assert rejection(verifier, sign(cfg, claims(iat=now + 3600))) == "TOKEN_NOT_YET_VALID"


# Issuer, audience and claims


def test_wrong_issuer_is_rejected(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    token = sign(cfg, claims(iss="https://login.example.com"))

    assert rejection(verifier, token) == "TOKEN_INVALID"


def test_wrong_audience_is_rejected(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    assert rejection(verifier, sign(cfg, claims(aud="another-suite"))) == "TOKEN_INVALID"


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "iss", "aud", "sub", "asan_kind"])
def test_missing_required_claim_is_rejected(cfg: AuthConfig, verifier: TokenVerifier, claim: str) -> None:
    assert rejection(verifier, sign(cfg, claims(**{claim: None}))) == "TOKEN_INVALID"


@pytest.mark.parametrize("kind", ["superuser", "CITIZEN", 1, ["citizen"]])
def test_unknown_kind_is_rejected(cfg: AuthConfig, verifier: TokenVerifier, kind: object) -> None:
    assert rejection(verifier, sign(cfg, claims(asan_kind=kind))) == "TOKEN_INVALID"


@pytest.mark.parametrize(
    "subject",
    ["1ab2c3d", "1AB2C3", "1AB2C3DE", "1AB-C3D", "ÇAB2C3D", " 1AB2C3D", "AZE 1234567", ""],
)
def test_citizen_subject_must_be_a_fin(cfg: AuthConfig, verifier: TokenVerifier, subject: str) -> None:
    assert rejection(verifier, sign(cfg, claims(sub=subject))) == "TOKEN_INVALID"


def test_officer_needs_agency(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    token = sign(cfg, claims(asan_kind="officer", sub="officer-17"))

    assert rejection(verifier, token) == "TOKEN_INVALID"


def test_service_needs_agency(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    assert rejection(verifier, sign(cfg, claims(asan_kind="service", sub="visa"))) == "TOKEN_INVALID"


@pytest.mark.parametrize("agency", ["dmx", "D", "A" * 21, "DM-X", "", 7])
def test_agency_code_must_be_capitals_digits_or_underscores(
    cfg: AuthConfig, verifier: TokenVerifier, agency: object
) -> None:
    token = sign(cfg, claims(asan_kind="officer", sub="officer-17", asan_agency=agency))

    assert rejection(verifier, token) == "TOKEN_INVALID"


def test_bank_needs_institution(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    assert rejection(verifier, sign(cfg, claims(asan_kind="bank", sub="gateway"))) == "TOKEN_INVALID"


def test_citizen_token_naming_an_agency_is_rejected(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    # Otherwise a check on `principal.agency_code` alone could be met by a citizen.
    assert rejection(verifier, sign(cfg, claims(asan_agency="DMX"))) == "TOKEN_INVALID"


def test_officer_token_naming_an_institution_is_rejected(cfg: AuthConfig, verifier: TokenVerifier) -> None:
    token = sign(
        cfg, claims(asan_kind="officer", sub="officer-17", asan_agency="DMX", asan_institution="KAPITALBANK")
    )

    assert rejection(verifier, token) == "TOKEN_INVALID"


# Shape of the token


@pytest.mark.parametrize(
    "token",
    ["not-a-token", "a.b", "a.b.c", "...", "e30.e30", "e30.e30.e30.e30", "@@@.e30.", "W10.e30.c2ln"],
)
def test_token_that_is_not_a_jwt_is_malformed(verifier: TokenVerifier, token: str) -> None:
    assert rejection(verifier, token) == "TOKEN_MALFORMED"


def test_empty_token_is_missing(verifier: TokenVerifier) -> None:
    assert rejection(verifier, "") == "TOKEN_MISSING"


# What the client sees


def test_refusal_reaches_the_client_as_unauthenticated_with_its_reason(
    cfg: AuthConfig, verifier: TokenVerifier
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(sign(cfg, claims(aud="another-suite")))

    status = refused.value.to_status("payment")
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert (info.reason, info.domain) == ("TOKEN_INVALID", "payment.asan.gov.az")


def test_refusal_messages_say_nothing_of_the_key_or_the_library(
    cfg: AuthConfig, verifier: TokenVerifier
) -> None:
    now = int(time.time())
    tokens = [
        "a.b.c",
        sign(cfg, claims(exp=now - 3600)),
        sign(cfg, claims(nbf=now + 3600)),
        sign(cfg, claims(aud="another-suite")),
        unsigned_token(claims()),
    ]
    for token in tokens:
        with pytest.raises(Unauthenticated) as refused:
            verifier.verify(token)
        message = refused.value.message
        assert "access token" in message
        for internal in ("BEGIN", "PUBLIC KEY", "Signature", "aud", "Invalid", "jwt"):
            assert internal not in message


# Configuration


def test_verifier_without_public_key_tells_the_operator_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"python -m services\.runtime\.tokens keys"):
        TokenVerifier.from_config(auth_config(tmp_path / "nowhere"))


def test_verifier_refuses_a_key_that_is_not_rsa() -> None:
    ec_public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    with pytest.raises(ValueError, match="RSA"):
        TokenVerifier(ec_public, ISSUER, AUDIENCE, 30)


def test_verifier_from_env_reads_the_keys_under_the_var_dir(tmp_path: Path) -> None:
    # conftest.py points ASAN_VAR_DIR at this test's tmp_path / "var".
    env_cfg = AuthConfig.from_env()
    ensure_keypair(env_cfg)

    assert env_cfg.public_key_file.is_relative_to(tmp_path)
    assert TokenVerifier.from_config(env_cfg).verify(mint(env_cfg, PrincipalKind.CITIZEN, FIN)).fin == FIN


# Keys that rotate


def key_pair(directory: Path) -> AuthConfig:
    """A key pair of its own (a key of ASAN Login, before or after a rotation)."""
    config = auth_config(directory)
    ensure_keypair(config)
    return config


def trusted_directory(directory: Path, *pairs: AuthConfig) -> Path:
    """A directory of the pairs' public keys, as the Secret's volume mounts them."""
    directory.mkdir(parents=True, exist_ok=True)
    for index, pair in enumerate(pairs):
        (directory / f"key-{index}.pem").write_bytes(pair.public_key_file.read_bytes())
    return directory


def test_tokens_of_the_old_and_the_new_key_both_verify_while_both_are_trusted(
    tmp_path: Path, cfg: AuthConfig
) -> None:
    """Issue with the old key, rotate: the login service signs with the new key from then on,
    and tokens from before the rotation stay valid until they expire."""
    before = mint(cfg, PrincipalKind.CITIZEN, FIN)
    new = key_pair(tmp_path / "new")
    keys = trusted_directory(tmp_path / "trusted", cfg, new)
    verifier = TokenVerifier.from_config(dataclasses.replace(cfg, public_keys=keys))
    after = mint(dataclasses.replace(cfg, private_key_file=new.private_key_file), PrincipalKind.CITIZEN, FIN)

    assert verifier.verify(before).fin == FIN
    assert verifier.verify(after).fin == FIN
    old_kid, new_kid = (jwt.get_unverified_header(token)["kid"] for token in (before, after))
    assert old_kid != new_kid  # the retired private key signs nothing any more
    assert verifier.keys.key_ids == sorted([old_kid, new_kid])


def test_a_key_taken_out_of_the_set_stops_verifying_and_one_put_in_starts_without_a_restart(
    tmp_path: Path, cfg: AuthConfig
) -> None:
    new, next_one = key_pair(tmp_path / "new"), key_pair(tmp_path / "next")
    directory = trusted_directory(tmp_path / "trusted", cfg, new)
    verifier = TokenVerifier(VerificationKeys.from_path(directory, reread_seconds=0), ISSUER, AUDIENCE)
    old_token, new_token, next_token = (
        mint(pair, PrincipalKind.CITIZEN, FIN) for pair in (cfg, new, next_one)
    )
    assert rejection(verifier, next_token) == "TOKEN_INVALID"  # not yet published

    (directory / "key-0.pem").unlink()  # the last token of the old key has expired
    (directory / "key-2.pem").write_bytes(next_one.public_key_file.read_bytes())

    assert rejection(verifier, old_token) == "TOKEN_INVALID"
    assert verifier.verify(new_token).fin == FIN
    assert verifier.verify(next_token).fin == FIN


def test_a_half_written_key_set_keeps_the_keys_read_before(tmp_path: Path, cfg: AuthConfig) -> None:
    directory = trusted_directory(tmp_path / "trusted", cfg)
    verifier = TokenVerifier(VerificationKeys.from_path(directory, reread_seconds=0), ISSUER, AUDIENCE)

    (directory / "key-1.pem").write_bytes(b"-----BEGIN PUBLIC KEY-----\nMIIB")

    assert verifier.verify(mint(cfg, PrincipalKind.CITIZEN, FIN)).fin == FIN


def test_a_jwks_names_its_keys_and_a_token_is_checked_against_the_key_it_names(
    tmp_path: Path, cfg: AuthConfig
) -> None:
    new = key_pair(tmp_path / "new")
    key_set = tokens_jwks([cfg.public_key_file.read_bytes(), new.public_key_file.read_bytes()])
    key_set["keys"][0]["kid"], key_set["keys"][1]["kid"] = "login-2026-05", "login-2026-11"
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(key_set))
    verifier = TokenVerifier.from_config(dataclasses.replace(cfg, public_keys=path))

    def signed(pair: AuthConfig, kid: str | None) -> str:
        headers = {"kid": kid} if kid else None
        return jwt.encode(claims(), pair.private_key_file.read_bytes(), algorithm="RS256", headers=headers)

    assert verifier.verify(signed(cfg, "login-2026-05")).fin == FIN
    assert verifier.verify(signed(new, "login-2026-11")).fin == FIN
    assert verifier.verify(signed(new, None)).fin == FIN  # no kid: any trusted key may have signed
    assert rejection(verifier, signed(new, "login-2026-05")) == "TOKEN_INVALID"  # not the key it names
    assert rejection(verifier, signed(new, "login-2099-01")) == "TOKEN_INVALID"


def test_the_key_set_comes_from_asan_auth_public_keys(
    tmp_path: Path, cfg: AuthConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = key_pair(tmp_path / "new")
    monkeypatch.setenv("ASAN_AUTH_PUBLIC_KEYS", str(trusted_directory(tmp_path / "trusted", cfg, new)))
    monkeypatch.setenv("ASAN_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("ASAN_AUTH_AUDIENCE", AUDIENCE)

    verifier = TokenVerifier.from_config(AuthConfig.from_env())

    assert verifier.verify(mint(new, PrincipalKind.CITIZEN, FIN)).fin == FIN
    monkeypatch.setenv("ASAN_AUTH_PUBLIC_KEYS", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="ASAN_AUTH_PUBLIC_KEYS"):
        TokenVerifier.from_config(AuthConfig.from_env())


# Principals


def test_principal_breaking_the_rules_cannot_be_constructed() -> None:
    with pytest.raises(InvalidPrincipal, match="FIN"):
        Principal(kind=PrincipalKind.CITIZEN, subject="not-a-fin")
    with pytest.raises(InvalidPrincipal, match="agency"):
        Principal(kind=PrincipalKind.OFFICER, subject="officer-17")
    with pytest.raises(InvalidPrincipal, match="institution"):
        Principal(kind=PrincipalKind.BANK, subject="gateway")


# Bearer metadata


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    assert bearer_token(f"{scheme} abc.def.ghi") == "abc.def.ghi"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_absent_authorization_is_token_missing(value: str | None) -> None:
    with pytest.raises(Unauthenticated) as refused:
        bearer_token(value)

    assert refused.value.reason == "TOKEN_MISSING"


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "abc.def.ghi",
        "Basic dXNlcjpwYXNzd29yZA==",
        "Bearer abc.def.ghi extra",
        "Bearer abc,def",
        "Bearer tökén",
        "Token abc.def.ghi",
    ],
)
def test_authorization_that_is_not_bearer_token_is_malformed(value: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        bearer_token(value)

    assert refused.value.reason == "TOKEN_MALFORMED"


# Verified tokens are remembered


def verifier_of(cfg: AuthConfig, leeway_seconds: int = 30) -> TokenVerifier:
    return TokenVerifier(cfg.public_key_file.read_bytes(), ISSUER, AUDIENCE, leeway_seconds)


def signed_by(cfg: AuthConfig, **overrides: Any) -> str:
    return sign(cfg, claims(**overrides))


def test_a_remembered_token_is_refused_once_past_its_exp(cfg: AuthConfig) -> None:
    """Within the leeway an expired token still verifies, but it is never taken from memory:
    once the leeway is gone (here: set to 0), the same token is refused as expired."""
    now = int(time.time())
    token = signed_by(cfg, iat=now - 100, nbf=now - 100, exp=now - 5)
    verifier = verifier_of(cfg, leeway_seconds=30)
    assert verifier.verify(token).fin == FIN

    verifier.leeway_seconds = 0

    assert rejection(verifier, token) == "TOKEN_EXPIRED"


def test_a_remembered_token_is_refused_once_its_key_is_taken_out_of_the_set(
    tmp_path: Path, cfg: AuthConfig
) -> None:
    directory = trusted_directory(tmp_path / "trusted", cfg)
    verifier = TokenVerifier(VerificationKeys.from_path(directory, reread_seconds=0), ISSUER, AUDIENCE)
    token = mint(cfg, PrincipalKind.CITIZEN, FIN)
    assert verifier.verify(token).fin == FIN

    (directory / "key-0.pem").unlink()
    trusted_directory(directory, key_pair(tmp_path / "new"))

    assert rejection(verifier, token) == "TOKEN_INVALID"


def test_a_refused_token_is_not_remembered_and_at_most_cache_size_tokens_are(cfg: AuthConfig) -> None:
    verifier = TokenVerifier(cfg.public_key_file.read_bytes(), ISSUER, AUDIENCE, cache_size=2)
    foreign = signed_by(cfg, iss="https://elsewhere.test")
    assert rejection(verifier, foreign) == "TOKEN_INVALID"
    assert verifier.remembered == 0

    tokens = [signed_by(cfg, sub=fin) for fin in ("1AB2C3D", "2AB2C3D", "3AB2C3D")]
    assert [verifier.verify(token).fin for token in tokens] == ["1AB2C3D", "2AB2C3D", "3AB2C3D"]
    assert verifier.remembered == 2
    # The oldest was forgotten, and is verified again (still good) when it comes back.
    assert verifier.verify(tokens[0]).fin == "1AB2C3D"
