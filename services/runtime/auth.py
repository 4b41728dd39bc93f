"""Who is calling: bearer JWTs in the style of ASAN Login, verified once for every service.

A caller sends `authorization: Bearer <token>` gRPC metadata. The token is an RS256 JWT
signed by the login service; services hold only its public keys. Besides the standard
claims it carries `asan_kind` (citizen, officer, bank, service, admin) and, depending on
the kind, `asan_agency` or `asan_institution`. Every failure is an `Unauthenticated`
with a stable reason (TOKEN_MISSING, TOKEN_MALFORMED, TOKEN_EXPIRED, TOKEN_NOT_YET_VALID,
TokenRejection.INVALID) and a message that names nothing of the key or of the library.

Keys rotate: several may be trusted at once (`VerificationKeys`, from ASAN_AUTH_PUBLIC_KEYS: a
JWKS file or a directory of PEM files; or the one key of ASAN_AUTH_PUBLIC_KEY_FILE), each
known by its key id, which a token names in its `kid` header. The source is read again when it
changes, so that a key added before the login service signs with it, or removed once the last
token it signed has expired, takes effect without a restart.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from services.runtime.config import AuthConfig, ConfigError
from services.runtime.errors import Unauthenticated
from services.runtime.identifiers import is_fin

# The only algorithm accepted. Pinning it is what rejects `alg: none` and HS256 tokens
# "signed" with the public key as an HMAC secret.
ALGORITHM = "RS256"

KIND_CLAIM = "asan_kind"
AGENCY_CLAIM = "asan_agency"
INSTITUTION_CLAIM = "asan_institution"
REQUIRED_CLAIMS = ("exp", "nbf", "iat", "iss", "aud", "sub")

log = logging.getLogger("asan.auth")

# Agency and institution codes, e.g. "DMX" (State Migration Service), "KAPITALBANK".
CODE_PATTERN = re.compile(r"[0-9A-Z_]{2,20}")
MAX_SUBJECT_LENGTH = 255


class TokenRejection(enum.StrEnum):
    """Why a token was refused: the stable `reason` of the Unauthenticated error."""

    MISSING = "TOKEN_MISSING"
    MALFORMED = "TOKEN_MALFORMED"
    EXPIRED = "TOKEN_EXPIRED"
    NOT_YET_VALID = "TOKEN_NOT_YET_VALID"
    # Bad signature, algorithm, issuer, audience or claims: nothing the caller can repair.
    INVALID = "TOKEN_INVALID"


_MESSAGES = {
    TokenRejection.MISSING: "This call needs an access token: send `authorization: Bearer <token>` metadata.",
    TokenRejection.MALFORMED: "The authorization metadata must be `Bearer <token>` with a JWT access token.",
    TokenRejection.EXPIRED: "The access token has expired; sign in again.",
    TokenRejection.NOT_YET_VALID: "The access token is not valid yet; check the client's clock.",
    TokenRejection.INVALID: "The access token is not valid; sign in again.",
}


def unauthenticated(rejection: TokenRejection) -> Unauthenticated:
    """The error for a refused token, with a fixed message that names no internals."""
    return Unauthenticated(message=_MESSAGES[rejection], reason=rejection.value)


class PrincipalKind(enum.StrEnum):
    CITIZEN = "citizen"
    # An employee of an agency, acting for it.
    OFFICER = "officer"
    BANK = "bank"
    # A service account of an agency, e.g. the visa service calling payment.
    SERVICE = "service"
    ADMIN = "admin"


# Kinds that act for an agency and so must name it; only banks name an institution.
_AGENCY_KINDS = frozenset({PrincipalKind.OFFICER, PrincipalKind.SERVICE})
# An admin may name an agency: then they are that agency's admin (its audit trail, no more),
# not an admin of the whole suite.
_OPTIONAL_AGENCY_KINDS = frozenset({PrincipalKind.ADMIN})
_INSTITUTION_KINDS = frozenset({PrincipalKind.BANK})


class InvalidPrincipal(ValueError):
    """The kind, subject, agency and institution do not fit together; the message says why."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. Constructing one checks the rules, so none is ever invalid."""

    kind: PrincipalKind
    subject: str
    agency_code: str | None = None
    institution_code: str | None = None

    def __post_init__(self) -> None:
        problem = _principal_problem(self.kind, self.subject, self.agency_code, self.institution_code)
        if problem:
            raise InvalidPrincipal(problem)

    @property
    def is_citizen(self) -> bool:
        return self.kind is PrincipalKind.CITIZEN

    @property
    def is_officer(self) -> bool:
        return self.kind is PrincipalKind.OFFICER

    @property
    def is_bank(self) -> bool:
        return self.kind is PrincipalKind.BANK

    @property
    def is_service(self) -> bool:
        return self.kind is PrincipalKind.SERVICE

    @property
    def is_admin(self) -> bool:
        """An admin of the whole suite; an agency's admin (an admin token naming an agency) is not."""
        return self.kind is PrincipalKind.ADMIN and self.agency_code is None

    @property
    def is_agency_admin(self) -> bool:
        """An admin of one agency: reads that agency's audit trail (services.runtime.audit)."""
        return self.kind is PrincipalKind.ADMIN and self.agency_code is not None

    @property
    def fin(self) -> str | None:
        """The citizen's FIN; None for every other kind."""
        return self.subject if self.is_citizen else None


def _principal_problem(
    kind: object, subject: object, agency_code: object, institution_code: object
) -> str | None:
    if not isinstance(kind, PrincipalKind):
        return f"kind must be one of {', '.join(PrincipalKind)}"
    return (
        _subject_problem(kind, subject)
        or _code_problem(
            kind,
            "agency",
            agency_code,
            required=kind in _AGENCY_KINDS,
            optional=kind in _OPTIONAL_AGENCY_KINDS,
        )
        or _code_problem(kind, "institution", institution_code, required=kind in _INSTITUTION_KINDS)
    )


def _subject_problem(kind: PrincipalKind, subject: object) -> str | None:
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
        return f"subject must be a non-empty string of at most {MAX_SUBJECT_LENGTH} characters"
    if kind is PrincipalKind.CITIZEN and not is_fin(subject):
        return "a citizen's subject must be a FIN: 7 digits or capital Latin letters, e.g. 1AB2C3D"
    return None


def _code_problem(
    kind: PrincipalKind, name: str, code: object, *, required: bool, optional: bool = False
) -> str | None:
    if optional and code is None:
        return None
    if not required and not optional:
        # Refused rather than ignored, so that a check such as `principal.agency_code == "DMX"`
        # can never be met by a citizen or a bank.
        return None if code is None else f"a {kind} has no {name} code"
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        return f"a {kind} needs an {name} code: 2-20 capital letters, digits or underscores"
    return None


def principal_claims(principal: Principal) -> dict[str, str]:
    """The ASAN-specific claims of a token for `principal` (besides `sub`)."""
    claims = {KIND_CLAIM: principal.kind.value}
    if principal.agency_code is not None:
        claims[AGENCY_CLAIM] = principal.agency_code
    if principal.institution_code is not None:
        claims[INSTITUTION_CLAIM] = principal.institution_code
    return claims


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """The principal named by verified claims; TOKEN_INVALID if they break the rules."""
    kind_value = claims.get(KIND_CLAIM)
    try:
        if not isinstance(kind_value, str):
            raise InvalidPrincipal(f"{KIND_CLAIM} must be a string")
        return Principal(
            kind=PrincipalKind(kind_value),
            subject=claims["sub"],
            agency_code=claims.get(AGENCY_CLAIM),
            institution_code=claims.get(INSTITUTION_CLAIM),
        )
    except (ValueError, KeyError):  # InvalidPrincipal is a ValueError, as is an unknown kind
        raise unauthenticated(TokenRejection.INVALID) from None


# Enough of the thumbprint to tell keys apart in logs and when keys rotate.
KEY_ID_LENGTH = 16
# How often a key source is looked at for changes.
KEYS_REREAD_SECONDS = 30.0


def key_id(public_key: RSAPublicKey) -> str:
    """A short RFC 7638 JWK thumbprint (SHA-256) of the key: the `kid` of a key read from a PEM
    file, and the one `tokens mint` puts in its tokens."""
    numbers = public_key.public_numbers()
    jwk = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return digest[:KEY_ID_LENGTH]


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rsa_public_key(pem: bytes) -> RSAPublicKey:
    key = load_pem_public_key(pem)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the token public key must be an RSA key (tokens are RS256)")
    return key


def read_keys(path: Path) -> dict[str, RSAPublicKey]:
    """The keys at `path`, by key id: every `*.pem` of a directory (each key's id its
    thumbprint, `key_id`), a JWKS file (the ids it gives), or one PEM file. ValueError when
    there is none or one cannot be read."""
    if path.is_dir():
        files = sorted(path.glob("*.pem"))  # a Secret's volume keeps its own files in ..dirs
        keys = {}
        for file in files:
            try:
                key = rsa_public_key(file.read_bytes())
            except ValueError as error:
                raise ValueError(f"{file}: {error}") from None
            keys[key_id(key)] = key
    elif path.suffix == ".json":
        keys = _jwks(path)
    else:
        key = rsa_public_key(path.read_bytes())
        keys = {key_id(key): key}
    if not keys:
        raise ValueError(f"{path} holds no public key")
    return keys


def _jwks(path: Path) -> dict[str, RSAPublicKey]:
    try:
        key_set = jwt.PyJWKSet.from_json(path.read_text())
    except (jwt.PyJWKSetError, jwt.InvalidKeyError, ValueError) as error:
        raise ValueError(f"{path} is not a JWKS of RSA signing keys: {error}") from None
    keys = {}
    for jwk in key_set.keys:
        key = jwk.key
        if (
            jwk.key_type != "RSA"
            or not isinstance(key, RSAPublicKey)
            or jwk.public_key_use not in (None, "sig")
        ):
            continue
        keys[jwk.key_id or key_id(key)] = key
    return keys


class VerificationKeys:
    """The public keys tokens may be signed with, by key id; read again from `source` (a path,
    see `read_keys`) when it changes, at most every `reread_seconds`."""

    def __init__(
        self,
        keys: Mapping[str, RSAPublicKey],
        source: Path | None = None,
        reread_seconds: float = KEYS_REREAD_SECONDS,
    ) -> None:
        self._keys = dict(keys)
        self.source = source
        self.reread_seconds = reread_seconds
        self._state = _state_of(source) if source else None
        self._looked_at = time.monotonic()
        # Goes up whenever the keys change: what was verified with the old ones is forgotten.
        self.generation = 0

    @classmethod
    def from_path(cls, path: Path, reread_seconds: float = KEYS_REREAD_SECONDS) -> VerificationKeys:
        return cls(read_keys(path), path, reread_seconds)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def candidates(self, kid: str | None) -> list[RSAPublicKey]:
        """The key a token's `kid` names (none if unknown); every key for a token without one."""
        self.reread_if_changed()
        if kid is None:
            return list(self._keys.values())
        key = self._keys.get(kid)
        return [key] if key is not None else []

    def reread_if_changed(self) -> None:
        now = time.monotonic()
        if self.source is None or now - self._looked_at < self.reread_seconds:
            return
        self._looked_at = now
        state = _state_of(self.source)
        if state == self._state:
            return
        try:
            keys = read_keys(self.source)
        except (OSError, ValueError):
            # Half-written by a rotation, or broken: keep trusting the keys read before.
            log.warning("cannot read the token verification keys; keeping the previous ones", exc_info=True)
            return
        self._keys, self._state = keys, state
        self.generation += 1
        log.info("token verification keys read again", extra={"key_ids": sorted(keys)})


def _state_of(source: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when a key source changes: names, sizes and modification times."""
    files = sorted(source.glob("*.pem")) if source.is_dir() else [source]
    state = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        state.append((file.name, stat.st_size, stat.st_mtime_ns))
    return tuple(state)


# Tokens remembered once verified: a busy caller sends the same token call after call.
VERIFIED_CACHE_SIZE = 10_000


class TokenVerifier:
    """Verifies access tokens against the login service's public keys.

    A token that verified is remembered (at most `cache_size` of them, the least recently used
    forgotten first) until its `exp`, so that an RS256 check is made once per token rather than
    once per call. Past `exp`, within the leeway, the token is verified again as any other;
    refusals are never remembered, and every key change forgets them all."""

    def __init__(
        self,
        public_keys: bytes | VerificationKeys,
        issuer: str,
        audience: str,
        leeway_seconds: int = 30,
        cache_size: int = VERIFIED_CACHE_SIZE,
    ) -> None:
        if isinstance(public_keys, bytes):  # one PEM key
            key = rsa_public_key(public_keys)
            public_keys = VerificationKeys({key_id(key): key})
        self.keys = public_keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self.cache_size = cache_size
        # token -> (principal, exp); valid for the key generation `_cached_generation`.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cached_generation = public_keys.generation

    @classmethod
    def from_config(cls, cfg: AuthConfig) -> TokenVerifier:
        """The keys of ASAN_AUTH_PUBLIC_KEYS when set, else the one of ASAN_AUTH_PUBLIC_KEY_FILE."""
        if cfg.public_keys is not None:
            path, variable = cfg.public_keys, "ASAN_AUTH_PUBLIC_KEYS"
            if not path.exists():
                raise ConfigError(
                    f"No token public keys at {path} ({variable}): a JWKS file or a directory of PEMs."
                )
        else:
            path, variable = cfg.public_key_file, "ASAN_AUTH_PUBLIC_KEY_FILE"
            if not path.is_file():
                raise ConfigError(
                    f"No token public key at {path} ({variable}). For a local key pair, "
                    "run `python -m services.runtime.tokens keys`."
                )
        try:
            keys = VerificationKeys.from_path(path)
        except ValueError as error:
            raise ConfigError(
                f"{path} ({variable}) is not a PEM RSA public key or a key set: {error}"
            ) from None
        return cls(keys, cfg.issuer, cfg.audience, cfg.leeway_seconds)

    def verify(self, token: str) -> Principal:
        """The principal the token names; raises Unauthenticated if it is not valid now."""
        if not token:
            raise unauthenticated(TokenRejection.MISSING)
        self.keys.reread_if_changed()
        if self.keys.generation != self._cached_generation:
            self._verified.clear()
            self._cached_generation = self.keys.generation
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires_at = cached
            if time.time() < expires_at:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires_at = self._verify_signed(token)
        self._verified[token] = (principal, expires_at)
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return principal

    @property
    def remembered(self) -> int:
        """How many verified tokens are remembered."""
        return len(self._verified)

    def _verify_signed(self, token: str) -> tuple[Principal, float]:
        """The principal and the `exp` of a token, by its signature and claims."""
        try:
            # Structure first, so that MALFORMED means "not a JWS at all" and a signed token
            # with bad contents counts as INVALID.
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise unauthenticated(TokenRejection.MALFORMED) from None
        except jwt.InvalidTokenError:
            raise unauthenticated(TokenRejection.INVALID) from None
        kid = header.get("kid")
        for key in self.keys.candidates(kid if isinstance(kid, str) else None):
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    issuer=self.issuer,
                    audience=self.audience,
                    leeway=self.leeway_seconds,
                    options={"require": list(REQUIRED_CLAIMS)},
                )
            except jwt.InvalidSignatureError:
                continue  # another key of the set, for a token naming none
            except jwt.ExpiredSignatureError:
                raise unauthenticated(TokenRejection.EXPIRED) from None
            except jwt.ImmatureSignatureError:
                raise unauthenticated(TokenRejection.NOT_YET_VALID) from None
            except jwt.InvalidTokenError:
                raise unauthenticated(TokenRejection.INVALID) from None
            return principal_from_claims(claims), float(claims["exp"])
        # No trusted key signed it: a forgery, or a key retired (or not yet published).
        raise unauthenticated(TokenRejection.INVALID)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an `authorization` metadata value ("Bearer <token>")."""
        return self.verify(bearer_token(authorization))


# RFC 6750 b64token: what may follow "Bearer ".
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def bearer_token(metadata_value: str | None) -> str:
    """The token of an `authorization` metadata value "Bearer <token>" (scheme in any case)."""
    if metadata_value is None or not metadata_value.strip():
        raise unauthenticated(TokenRejection.MISSING)
    parts = metadata_value.split()
    if len(parts) != 2 or parts[0].lower() != "bearer" or not _B64TOKEN.fullmatch(parts[1]):
        raise unauthenticated(TokenRejection.MALFORMED)
    return parts[1]
