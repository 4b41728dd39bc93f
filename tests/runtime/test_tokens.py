"""The development key pair and token minting, through the API and the CLI."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.runtime.auth import InvalidPrincipal, PrincipalKind, TokenVerifier
from services.runtime.config import AuthConfig, ConfigError
from services.runtime.tokens import ensure_keypair, key_id, mint

REPO_ROOT = Path(__file__).resolve().parents[2]
FIN = "1AB2C3D"


def auth_config(directory: Path) -> AuthConfig:
    return AuthConfig(
        issuer="https://login.asan.test",
        audience="asan-services-test",
        public_key_file=directory / "public" / "auth_public.pem",
        private_key_file=directory / "private" / "auth_private.pem",
        leeway_seconds=30,
    )


@pytest.fixture
def cfg(tmp_path: Path) -> AuthConfig:
    config = auth_config(tmp_path / "keys")
    ensure_keypair(config)
    return config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Key pair


def test_keypair_is_created_on_first_run_with_a_private_key_only_the_owner_can_read(
    tmp_path: Path,
) -> None:
    config = auth_config(tmp_path / "deep" / "keys")

    ensure_keypair(config)

    assert config.public_key_file.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert config.private_key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert mode(config.private_key_file) == 0o600


def test_second_run_keeps_the_existing_key_pair(cfg: AuthConfig) -> None:
    before = (cfg.public_key_file.read_bytes(), cfg.private_key_file.read_bytes())

    ensure_keypair(cfg)

    assert (cfg.public_key_file.read_bytes(), cfg.private_key_file.read_bytes()) == before


def test_half_a_key_pair_is_never_overwritten(cfg: AuthConfig) -> None:
    public_pem = cfg.public_key_file.read_bytes()
    cfg.private_key_file.unlink()

    with pytest.raises(ConfigError, match="restore the missing key"):
        ensure_keypair(cfg)
    assert cfg.public_key_file.read_bytes() == public_pem
    assert not cfg.private_key_file.exists()


def test_key_id_is_the_rfc_7638_thumbprint_shortened() -> None:
    # The example key and thumbprint of RFC 7638, section 3.1.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big")
    public_key = rsa.RSAPublicNumbers(e=65537, n=modulus).public_key()

    assert key_id(public_key) == "NzbLsXh8uDCcd-6M"


# Minting


def test_minted_token_names_its_key_in_the_kid_header(cfg: AuthConfig) -> None:
    token = mint(cfg, PrincipalKind.CITIZEN, FIN)

    header = jwt.get_unverified_header(token)
    public_key = serialization.load_pem_public_key(cfg.public_key_file.read_bytes())
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert header["alg"] == "RS256"
    assert header["kid"] == key_id(public_key)
    assert TokenVerifier.from_config(cfg).verify(token).fin == FIN


def test_minted_token_lives_for_its_ttl_from_not_before(cfg: AuthConfig) -> None:
    not_before = datetime.now(UTC) + timedelta(minutes=5)
    token = mint(cfg, PrincipalKind.CITIZEN, FIN, ttl_seconds=900, not_before=not_before)

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["nbf"] == int(not_before.timestamp())
    assert claims["exp"] - claims["nbf"] == 900


def test_each_minted_token_has_its_own_id(cfg: AuthConfig) -> None:
    ids = {
        jwt.decode(mint(cfg, PrincipalKind.CITIZEN, FIN), options={"verify_signature": False})["jti"]
        for _ in range(5)
    }

    assert len(ids) == 5


@pytest.mark.parametrize(
    ("kind", "subject", "agency", "institution"),
    [
        (PrincipalKind.CITIZEN, "1ab2c3d", None, None),
        (PrincipalKind.CITIZEN, "12345678", None, None),
        (PrincipalKind.CITIZEN, FIN, "DMX", None),
        (PrincipalKind.OFFICER, "officer-17", None, None),
        (PrincipalKind.OFFICER, "officer-17", "dmx", None),
        (PrincipalKind.SERVICE, "visa", None, None),
        (PrincipalKind.BANK, "gateway", None, None),
        (PrincipalKind.BANK, "gateway", "DMX", "KAPITALBANK"),
        (PrincipalKind.ADMIN, "", None, None),
    ],
)
def test_mint_refuses_what_the_verifier_would_reject(
    cfg: AuthConfig, kind: PrincipalKind, subject: str, agency: str | None, institution: str | None
) -> None:
    with pytest.raises(InvalidPrincipal):
        mint(cfg, kind, subject, agency_code=agency, institution_code=institution)


def test_mint_refuses_a_lifetime_that_is_not_positive(cfg: AuthConfig) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        mint(cfg, PrincipalKind.CITIZEN, FIN, ttl_seconds=0)


def test_mint_refuses_a_not_before_without_time_zone(cfg: AuthConfig) -> None:
    with pytest.raises(ValueError, match="time zone"):
        mint(cfg, PrincipalKind.CITIZEN, FIN, not_before=datetime(2030, 1, 1))


def test_mint_without_private_key_tells_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"python -m services\.runtime\.tokens keys"):
        mint(auth_config(tmp_path / "nowhere"), PrincipalKind.CITIZEN, FIN)


# CLI


def run_cli(var_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ASAN_AUTH_")}
    env["ASAN_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [sys.executable, "-m", "services.runtime.tokens", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The same directory for the CLI and for AuthConfig.from_env() in the test.
    path = tmp_path / "cli-var"
    monkeypatch.setenv("ASAN_VAR_DIR", str(path))
    for name in [name for name in os.environ if name.startswith("ASAN_AUTH_")]:
        monkeypatch.delenv(name)
    return path


def test_cli_mints_a_citizen_token_the_verifier_accepts(var_dir: Path) -> None:
    result = run_cli(var_dir, "mint", "--kind", "citizen", "--subject", FIN)

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == f"{token}\n"
    principal = TokenVerifier.from_config(AuthConfig.from_env()).verify(token)
    assert (principal.kind, principal.fin) == (PrincipalKind.CITIZEN, FIN)


def test_cli_mints_officer_and_bank_tokens(var_dir: Path) -> None:
    officer = run_cli(var_dir, "mint", "--kind", "officer", "--subject", "officer-17", "--agency", "DMX")
    bank = run_cli(
        var_dir,
        "mint",
        "--kind",
        "bank",
        "--subject",
        "gateway",
        "--institution",
        "KAPITALBANK",
        "--ttl",
        "60",
    )

    verifier = TokenVerifier.from_config(AuthConfig.from_env())
    assert verifier.verify(officer.stdout.strip()).agency_code == "DMX"
    assert verifier.verify(bank.stdout.strip()).institution_code == "KAPITALBANK"


def test_cli_keys_prints_the_public_key_path_and_keeps_the_private_key_private(var_dir: Path) -> None:
    result = run_cli(var_dir, "keys")

    cfg = AuthConfig.from_env()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(cfg.public_key_file)
    assert cfg.public_key_file.is_file()
    assert mode(cfg.private_key_file) == 0o600


def test_cli_second_run_reuses_the_key_pair(var_dir: Path) -> None:
    first = run_cli(var_dir, "mint", "--kind", "citizen", "--subject", FIN)
    cfg = AuthConfig.from_env()
    keys_after_first = (cfg.public_key_file.read_bytes(), cfg.private_key_file.read_bytes())

    second = run_cli(var_dir, "mint", "--kind", "citizen", "--subject", "7ZZ9Y8X")

    assert (cfg.public_key_file.read_bytes(), cfg.private_key_file.read_bytes()) == keys_after_first
    verifier = TokenVerifier.from_config(cfg)
    assert verifier.verify(first.stdout.strip()).fin == FIN
    assert verifier.verify(second.stdout.strip()).fin == "7ZZ9Y8X"


def test_cli_refuses_an_invalid_fin_with_exit_status_2(var_dir: Path) -> None:
    result = run_cli(var_dir, "mint", "--kind", "citizen", "--subject", "1ab2c3d")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "FIN" in result.stderr


def test_cli_refuses_an_officer_without_agency_with_exit_status_2(var_dir: Path) -> None:
    result = run_cli(var_dir, "mint", "--kind", "officer", "--subject", "officer-17")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "agency" in result.stderr


def test_cli_jwks_lists_public_keys_by_the_kid_tokens_carry(var_dir: Path, tmp_path: Path) -> None:
    run_cli(var_dir, "keys")
    cfg = AuthConfig.from_env()
    other = auth_config(tmp_path / "other")
    ensure_keypair(other)

    result = run_cli(var_dir, "jwks", str(cfg.public_key_file), str(other.public_key_file))

    assert result.returncode == 0, result.stderr
    key_set = json.loads(result.stdout)
    token = mint(cfg, PrincipalKind.CITIZEN, FIN)
    assert key_set["keys"][0]["kid"] == jwt.get_unverified_header(token)["kid"]
    assert [key["use"] for key in key_set["keys"]] == ["sig", "sig"]
    path = tmp_path / "jwks.json"
    path.write_text(result.stdout)
    assert TokenVerifier.from_config(dataclasses.replace(cfg, public_keys=path)).verify(token).fin == FIN
