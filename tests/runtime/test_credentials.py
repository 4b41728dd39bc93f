"""A service's own token for outgoing calls: minted locally for its agency's service account
and reused until shortly before it expires, or read from a mounted, externally refreshed file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from services.runtime.auth import PrincipalKind, TokenVerifier
from services.runtime.config import AuthConfig, ConfigError
from services.runtime.credentials import ServiceCredentials
from services.runtime.tokens import ensure_keypair


@pytest.fixture
def auth(tmp_path: Path) -> AuthConfig:
    config = dataclasses.replace(
        AuthConfig.from_env(),
        public_key_file=tmp_path / "keys" / "public.pem",
        private_key_file=tmp_path / "keys" / "private.pem",
    )
    ensure_keypair(config)
    return config


def test_a_minted_token_names_the_agencys_service_account_and_is_reused(auth: AuthConfig) -> None:
    credentials = ServiceCredentials("visa", auth, agency_code="DMX")
    token = credentials.token()
    principal = TokenVerifier.from_config(auth).verify(token)
    assert (principal.kind, principal.subject, principal.agency_code) == (
        PrincipalKind.SERVICE,
        "visa",
        "DMX",
    )
    assert credentials.token() == token
    assert credentials.metadata() == (("authorization", f"Bearer {token}"),)


def test_a_token_file_wins_over_minting(
    auth: AuthConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("mounted.token.value\n")
    monkeypatch.setenv("VISA_SERVICE_TOKEN_FILE", str(token_file))
    assert ServiceCredentials.from_env("visa", auth, default_agency="DMX").token() == "mounted.token.value"


def test_a_missing_token_file_or_agency_is_a_configuration_error(auth: AuthConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AGENCY_CODE"):
        ServiceCredentials("visa", auth)
    with pytest.raises(ConfigError, match="cannot read"):
        ServiceCredentials("visa", auth, token_file=tmp_path / "absent").token()
