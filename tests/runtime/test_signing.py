"""Ed25519 signatures checked offline: what was signed verifies with the published key, one
changed byte does not, and a configured key file must exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.config import ConfigError
from services.runtime.signing import Ed25519Signer, SignatureRejected, canonical_json, verify_signature


def test_signed_content_verifies_with_the_public_key_and_a_changed_byte_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EXAMPLE_SIGNING_KEY_FILE", raising=False)
    signer = Ed25519Signer.from_env("EXAMPLE_SIGNING_KEY_FILE", "example_ed25519.pem")
    content = canonical_json({"b": 1, "a": "Azərbaycan"})
    assert content == '{"a":"Azərbaycan","b":1}'.encode()
    signature = signer.sign(content)
    verify_signature(signer.public_key_pem(), content, signature)
    changed = bytearray(content)
    changed[5] ^= 1
    with pytest.raises(SignatureRejected):
        verify_signature(signer.public_key_pem(), bytes(changed), signature)


def test_the_development_key_is_made_once_and_keeps_its_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXAMPLE_SIGNING_KEY_FILE", raising=False)
    first = Ed25519Signer.from_env("EXAMPLE_SIGNING_KEY_FILE", "example_ed25519.pem")
    second = Ed25519Signer.from_env("EXAMPLE_SIGNING_KEY_FILE", "example_ed25519.pem")
    assert first.key_id == second.key_id and len(first.key_id) == 16


def test_a_configured_key_file_that_does_not_exist_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_SIGNING_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="EXAMPLE_SIGNING_KEY_FILE"):
        Ed25519Signer.from_env("EXAMPLE_SIGNING_KEY_FILE", "example_ed25519.pem")
