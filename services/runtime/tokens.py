"""Local stand-in for ASAN Login: a development key pair and tokens signed with it.

In production the login service holds the private key and services get only the public
one; on a developer's machine and in tests, this module makes both under ASAN_VAR_DIR.
Minted tokens name their key in the `kid` header (its thumbprint, `auth.key_id`).

    python -m services.runtime.tokens keys
    python -m services.runtime.tokens mint --kind citizen --subject 1AB2C3D
    python -m services.runtime.tokens mint --kind officer --subject officer-17 --agency DMX
    python -m services.runtime.tokens jwks old_public.pem new_public.pem > jwks.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.runtime.auth import (
    ALGORITHM,
    Principal,
    PrincipalKind,
    key_id,
    principal_claims,
    rsa_public_key,
)
from services.runtime.config import AuthConfig, ConfigError

# key_id is the verifier's (services.runtime.auth), re-exported: the kid of minted tokens.
__all__ = ["KEY_SIZE", "ensure_keypair", "jwks", "key_id", "main", "mint"]

KEY_SIZE = 2048


def ensure_keypair(cfg: AuthConfig) -> None:
    """Creates an RSA key pair at the configured paths unless both files exist already."""
    private_exists = cfg.private_key_file.exists()
    public_exists = cfg.public_key_file.exists()
    if private_exists and public_exists:
        return
    if private_exists or public_exists:
        # Never overwrite half a pair: the other half may be the one every service trusts.
        present, absent = (
            (cfg.private_key_file, cfg.public_key_file)
            if private_exists
            else (cfg.public_key_file, cfg.private_key_file)
        )
        raise ConfigError(
            f"Found {present} but not {absent}; restore the missing key, or remove {present} "
            "to create a new pair (tokens signed with the old key will stop working)."
        )
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    private_pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    cfg.private_key_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.public_key_file.parent.mkdir(parents=True, exist_ok=True)
    _write_private(cfg.private_key_file, private_pem)
    cfg.public_key_file.write_bytes(public_pem)


def _write_private(path: Path, content: bytes) -> None:
    # Created with mode 0600 from the start, so that the key is never readable by others,
    # not even for a moment; O_EXCL so that a concurrent run cannot be overwritten.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path} appeared while creating it; another process made keys, try again"
        ) from None
    with os.fdopen(fd, "wb") as file:
        file.write(content)


def _load_private_key(cfg: AuthConfig) -> rsa.RSAPrivateKey:
    path = cfg.private_key_file
    if not path.is_file():
        raise ConfigError(
            f"No token private key at {path} (ASAN_AUTH_PRIVATE_KEY_FILE); "
            "run `python -m services.runtime.tokens keys`."
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{path} (ASAN_AUTH_PRIVATE_KEY_FILE) is not an unencrypted PEM RSA private key")
    return key


def mint(
    cfg: AuthConfig,
    kind: PrincipalKind,
    subject: str,
    *,
    agency_code: str | None = None,
    institution_code: str | None = None,
    ttl_seconds: int = 3600,
    not_before: datetime | None = None,
) -> str:
    """A signed access token for the principal, valid from `not_before` (default now) for
    `ttl_seconds`. Raises InvalidPrincipal (a ValueError) for anything the verifier would
    reject, so that no token is minted that cannot be used."""
    principal = Principal(
        kind=kind, subject=subject, agency_code=agency_code, institution_code=institution_code
    )
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    if not_before is not None and not_before.tzinfo is None:
        raise ValueError("not_before must carry a time zone, e.g. datetime.now(UTC)")
    now = datetime.now(UTC)
    valid_from = not_before or now
    claims = {
        "iss": cfg.issuer,
        "aud": cfg.audience,
        "sub": principal.subject,
        "iat": int(now.timestamp()),
        "nbf": int(valid_from.timestamp()),
        "exp": int((valid_from + timedelta(seconds=ttl_seconds)).timestamp()),
        "jti": uuid.uuid4().hex,
        **principal_claims(principal),
    }
    private_key = _load_private_key(cfg)
    return jwt.encode(
        claims, private_key, algorithm=ALGORITHM, headers={"kid": key_id(private_key.public_key())}
    )


def jwks(public_keys: Sequence[bytes]) -> dict[str, list[dict[str, str]]]:
    """A JWKS of PEM public keys, each with the `kid` that `mint` and a directory of PEMs give
    it: a key set for ASAN_AUTH_PUBLIC_KEYS (RUNBOOK.md, "Rotating the token keys")."""
    keys = []
    for pem in public_keys:
        key = rsa_public_key(pem)
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
        keys.append(
            {"kty": "RSA", "n": jwk["n"], "e": jwk["e"], "kid": key_id(key), "use": "sig", "alg": ALGORITHM}
        )
    return {"keys": keys}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.runtime.tokens",
        description="Development key pair and access tokens (configured by ASAN_VAR_DIR, ASAN_AUTH_*).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("keys", help="create the key pair unless it exists; print the public key path")
    mint_parser = commands.add_parser("mint", help="print a signed access token (creates keys if needed)")
    mint_parser.add_argument("--kind", required=True, choices=[kind.value for kind in PrincipalKind])
    mint_parser.add_argument("--subject", required=True, help="a FIN for citizens, e.g. 1AB2C3D")
    mint_parser.add_argument(
        "--agency",
        help="agency code, required for officer and service, e.g. DMX; an admin naming one "
        "is that agency's admin",
    )
    mint_parser.add_argument("--institution", help="institution code, required for bank, e.g. KAPITALBANK")
    mint_parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    jwks_parser = commands.add_parser(
        "jwks", help="print a JWKS of PEM public keys (for ASAN_AUTH_PUBLIC_KEYS)"
    )
    jwks_parser.add_argument("pem", nargs="+", type=Path, help="RSA public key files, PEM")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "jwks":
        try:
            print(json.dumps(jwks([path.read_bytes() for path in args.pem]), indent=2))
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        cfg = AuthConfig.from_env()
        ensure_keypair(cfg)
        if args.command == "keys":
            print(cfg.public_key_file)
            return 0
        token = mint(
            cfg,
            PrincipalKind(args.kind),
            args.subject,
            agency_code=args.agency,
            institution_code=args.institution,
            ttl_seconds=args.ttl,
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        # Bad input: exits 2 with usage, like any other argument error.
        parser.error(str(error))
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
