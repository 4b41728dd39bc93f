"""The access log's hash chain, per citizen. Pure: no I/O.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own fields in
canonical JSON, so that changing, removing or reordering any stored entry changes every hash
after it: recomputing the chain finds the first entry that no longer matches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.runtime.signing import canonical_json

GENESIS = "0" * 64


@dataclass(frozen=True)
class ChainedEntry:
    """The fields an entry's hash covers, and the hashes it stores."""

    fin: str
    sequence: int
    occurred_at: datetime
    action: str
    institution_code: str
    purpose: str
    consent_id: str
    scopes: tuple[str, ...]
    providers: tuple[str, ...]
    request_id: str
    package_digest: str
    previous_hash: str
    entry_hash: str = ""

    def computed_hash(self) -> str:
        fields = {
            "fin": self.fin,
            "sequence": self.sequence,
            "time": self.occurred_at.isoformat(),
            "action": self.action,
            "institution_code": self.institution_code,
            "purpose": self.purpose,
            "consent_id": self.consent_id,
            "scopes": list(self.scopes),
            "providers": list(self.providers),
            "request_id": self.request_id,
            "package_digest": self.package_digest,
        }
        return hashlib.sha256(self.previous_hash.encode() + b"\n" + canonical_json(fields)).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    entries_checked: int
    # Sequence of the first entry that does not match; None when the chain is intact.
    first_broken: int | None
    head_hash: str


def verify_chain(entries: Iterable[ChainedEntry], pinned_head: tuple[int, str] | None = None) -> ChainCheck:
    """Recomputes a citizen's chain, entries in sequence order. An entry breaks the chain when its
    sequence is not the next one, its previous hash is not its predecessor's hash, or its own
    hash does not match its fields. `pinned_head` (sequence, hash) is the recorded head: entries
    missing at the end break the chain at the first missing sequence."""
    previous_hash = GENESIS
    expected_sequence = 1
    checked = 0
    for entry in entries:
        checked += 1
        if (
            entry.sequence != expected_sequence
            or entry.previous_hash != previous_hash
            or entry.computed_hash() != entry.entry_hash
        ):
            return ChainCheck(checked, expected_sequence, previous_hash)
        previous_hash = entry.entry_hash
        expected_sequence += 1
    if pinned_head is not None and (pinned_head[0], pinned_head[1]) != (expected_sequence - 1, previous_hash):
        return ChainCheck(checked, min(expected_sequence, pinned_head[0]), previous_hash)
    return ChainCheck(checked, None, previous_hash)
