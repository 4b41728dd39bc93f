"""Ids and numbers derived from the request that makes them, so that a retry names the same
parcel, declaration or payout."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6a0f8f0e-8c1b-4b7e-9a4e-3d2c1b0a9f8e")
# Crockford's base32: no I, L, O or U to misread.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def id_for(kind: str, request_id: str, fingerprint: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{request_id}:{fingerprint}"))


def declaration_number_for(declaration_id: str, season_year: int) -> str:
    """ "AGR-2026-7K3P9QXM"."""
    value = uuid.UUID(declaration_id).int >> 88
    return f"AGR-{season_year}-" + "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(8)))


def payout_request_id_for(declaration_id: str, leg: str, reissue: int = 0) -> str:
    """The request_id of a payout leg at ASAN ödəniş: a retry never pays twice. Each re-issue
    by an officer is a payout of its own, under its own id (the first payout's is unchanged)."""
    if reissue == 0:
        return str(uuid.uuid5(_NAMESPACE, f"payout:{declaration_id}:{leg}"))
    return str(uuid.uuid5(_NAMESPACE, f"payout:{declaration_id}:{leg}:reissue:{reissue}"))
