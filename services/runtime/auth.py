"""Who is calling: bearer JWTs in the style of ASAN Login, verified once for every service.

A caller sends `authorization: Bearer <token>` gRPC metadata. The token is an RS256 JWT
signed by the login service; services hold only the public key. Besides the standard
claims it carries `asan_kind` (citizen, officer, bank, service, admin) and, depending on
the kind, `asan_agency` or `asan_institution`. Every failure is an `Unauthenticated`
with a stable reason (TOKEN_MISSING, TOKEN_MALFORMED, TOKEN_EXPIRED, TOKEN_NOT_YET_VALID,
TokenRejection.INVALID) and a message that names nothing of the key or of the library.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
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
        return self.kind is PrincipalKind.ADMIN

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
        or _code_problem(kind, "agency", agency_code, required=kind in _AGENCY_KINDS)
        or _code_problem(kind, "institution", institution_code, required=kind in _INSTITUTION_KINDS)
    )


def _subject_problem(kind: PrincipalKind, subject: object) -> str | None:
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
        return f"subject must be a non-empty string of at most {MAX_SUBJECT_LENGTH} characters"
    if kind is PrincipalKind.CITIZEN and not is_fin(subject):
        return "a citizen's subject must be a FIN: 7 digits or capital Latin letters, e.g. 1AB2C3D"
    return None


def _code_problem(kind: PrincipalKind, name: str, code: object, *, required: bool) -> str | None:
    if not required:
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


class TokenVerifier:
    """Verifies access tokens against the login service's public key."""

    def __init__(self, public_key_pem: bytes, issuer: str, audience: str, leeway_seconds: int = 30) -> None:
        key = load_pem_public_key(public_key_pem)
        if not isinstance(key, RSAPublicKey):
            raise ValueError("the token public key must be an RSA key (tokens are RS256)")
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds

    @classmethod
    def from_config(cls, cfg: AuthConfig) -> TokenVerifier:
        path = cfg.public_key_file
        if not path.is_file():
            raise ConfigError(
                f"No token public key at {path} (ASAN_AUTH_PUBLIC_KEY_FILE). For a local key pair, "
                "run `python -m services.runtime.tokens keys`."
            )
        try:
            return cls(path.read_bytes(), cfg.issuer, cfg.audience, cfg.leeway_seconds)
        except ValueError:
            raise ConfigError(f"{path} (ASAN_AUTH_PUBLIC_KEY_FILE) is not a PEM RSA public key") from None

    def verify(self, token: str) -> Principal:
        """The principal the token names; raises Unauthenticated if it is not valid now."""
        if not token:
            raise unauthenticated(TokenRejection.MISSING)
        try:
            # Structure first, so that MALFORMED means "not a JWS at all" and a signed token
            # with bad contents counts as INVALID.
            jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise unauthenticated(TokenRejection.MALFORMED) from None
        except jwt.InvalidTokenError:
            raise unauthenticated(TokenRejection.INVALID) from None
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise unauthenticated(TokenRejection.EXPIRED) from None
        except jwt.ImmatureSignatureError:
            raise unauthenticated(TokenRejection.NOT_YET_VALID) from None
        except jwt.InvalidTokenError:
            raise unauthenticated(TokenRejection.INVALID) from None
        return principal_from_claims(claims)

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
