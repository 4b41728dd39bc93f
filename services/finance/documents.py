"""The signed documents a bank keeps: the consent artefact and the data package. Each is
canonical JSON (services.runtime.signing.canonical_json) signed with the service's Ed25519
key; the bank checks it offline with the public key of GetSigningKey. No I/O, no protobuf.

    artefact = {"format": "ASAN-FINANS-CONSENT-1", "key_id", "consent_id", "institution_code",
                "fin", "purpose", "scopes", "data_period": {"start", "end"}, "kind",
                "frequency", "approve_time", "expire_time"}
    package  = {"format": "ASAN-FINANS-PACKAGE-1", "key_id", "package_id", "consent_id",
                "institution_code", "fin", "fetch_time", "data_period": {"start", "end"},
                "providers", "scopes": [{"scope", "provider", "records": [{field: value}]}]}
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.runtime.signing import Ed25519Signer, canonical_json

ARTEFACT_FORMAT = "ASAN-FINANS-CONSENT-1"
PACKAGE_FORMAT = "ASAN-FINANS-PACKAGE-1"


@dataclass(frozen=True)
class SignedDocument:
    content: bytes
    signature: bytes
    key_id: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def _sign(signer: Ed25519Signer, document: dict[str, Any]) -> SignedDocument:
    content = canonical_json({**document, "key_id": signer.key_id})
    return SignedDocument(content, signer.sign(content), signer.key_id)


def consent_artefact(
    signer: Ed25519Signer,
    *,
    consent_id: str,
    institution_code: str,
    fin: str,
    purpose: str,
    scopes: Sequence[str],
    period: tuple[date, date],
    kind: str,
    frequency: str | None,
    approved_at: datetime,
    expire_at: datetime,
) -> SignedDocument:
    return _sign(
        signer,
        {
            "format": ARTEFACT_FORMAT,
            "consent_id": consent_id,
            "institution_code": institution_code,
            "fin": fin,
            "purpose": purpose,
            "scopes": list(scopes),
            "data_period": {"start": period[0].isoformat(), "end": period[1].isoformat()},
            "kind": kind,
            "frequency": frequency,
            "approve_time": approved_at.isoformat(),
            "expire_time": expire_at.isoformat(),
        },
    )


@dataclass(frozen=True)
class ScopeRecords:
    scope: str
    provider: str
    records: tuple[Mapping[str, str], ...]


def data_package(
    signer: Ed25519Signer,
    *,
    package_id: str,
    consent_id: str,
    institution_code: str,
    fin: str,
    fetched_at: datetime,
    period: tuple[date, date],
    scopes: Sequence[ScopeRecords],
) -> SignedDocument:
    return _sign(
        signer,
        {
            "format": PACKAGE_FORMAT,
            "package_id": package_id,
            "consent_id": consent_id,
            "institution_code": institution_code,
            "fin": fin,
            "fetch_time": fetched_at.isoformat(),
            "data_period": {"start": period[0].isoformat(), "end": period[1].isoformat()},
            "providers": sorted({part.provider for part in scopes}),
            "scopes": [
                {"scope": part.scope, "provider": part.provider, "records": [dict(r) for r in part.records]}
                for part in scopes
            ],
        },
    )
