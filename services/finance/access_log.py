"""The access log in the database: one entry per fetch and per consent change, appended to the
citizen's chain in the transaction of the change itself, listed newest first, verified."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from services.finance.chain import GENESIS, ChainCheck, ChainedEntry, verify_chain
from services.finance.tables import AccessLogRow, ChainHeadRow, ConsentRow


def append(
    session: Session,
    consent: ConsentRow,
    action: str,
    at: datetime,
    request_id: str,
    *,
    scopes: tuple[str, ...] | None = None,
    providers: tuple[str, ...] = (),
    package_digest: str = "",
) -> AccessLogRow:
    """Adds the next entry of the consent's citizen. The head row is locked first, so that two
    changes for one citizen are chained one after the other (a first entry's race ends in a
    unique-key conflict, which the caller's unit retries)."""
    head = session.get(ChainHeadRow, consent.fin, with_for_update=True)
    entry = ChainedEntry(
        fin=consent.fin,
        sequence=(head.sequence if head else 0) + 1,
        occurred_at=at,
        action=action,
        institution_code=consent.institution_code,
        purpose=consent.purpose,
        consent_id=consent.id,
        scopes=scopes if scopes is not None else consent.scope_names,
        providers=providers,
        request_id=request_id,
        package_digest=package_digest,
        previous_hash=head.entry_hash if head else GENESIS,
    )
    entry_hash = entry.computed_hash()
    row = AccessLogRow(
        fin=entry.fin,
        sequence=entry.sequence,
        occurred_at=entry.occurred_at,
        action=entry.action,
        institution_code=entry.institution_code,
        purpose=entry.purpose,
        consent_id=entry.consent_id,
        scopes=",".join(entry.scopes),
        providers=",".join(entry.providers),
        request_id=entry.request_id,
        package_digest=entry.package_digest,
        previous_hash=entry.previous_hash,
        entry_hash=entry_hash,
    )
    session.add(row)
    if head is None:
        session.add(
            ChainHeadRow(fin=entry.fin, sequence=entry.sequence, entry_hash=entry_hash, updated_at=at)
        )
    else:
        head.sequence, head.entry_hash, head.updated_at = entry.sequence, entry_hash, at
    session.flush()
    return row


def entries_newest_first(
    session: Session, fin: str, before_sequence: int | None, limit: int
) -> list[AccessLogRow]:
    query = select(AccessLogRow).where(AccessLogRow.fin == fin)
    if before_sequence is not None:
        query = query.where(AccessLogRow.sequence < before_sequence)
    return list(session.scalars(query.order_by(AccessLogRow.sequence.desc()).limit(limit)))


def _chained(row: AccessLogRow) -> ChainedEntry:
    return ChainedEntry(
        fin=row.fin,
        sequence=row.sequence,
        occurred_at=row.occurred_at,
        action=row.action,
        institution_code=row.institution_code,
        purpose=row.purpose,
        consent_id=row.consent_id,
        scopes=tuple(row.scopes.split(",")) if row.scopes else (),
        providers=tuple(row.providers.split(",")) if row.providers else (),
        request_id=row.request_id,
        package_digest=row.package_digest,
        previous_hash=row.previous_hash,
        entry_hash=row.entry_hash,
    )


def verify(session: Session, fin: str, batch: int = 500) -> ChainCheck:
    """Recomputes the citizen's chain from the first entry, in batches, against its head."""
    head = session.get(ChainHeadRow, fin)

    def rows() -> list[ChainedEntry]:
        entries: list[ChainedEntry] = []
        after = 0
        while True:
            page = list(
                session.scalars(
                    select(AccessLogRow)
                    .where(AccessLogRow.fin == fin, AccessLogRow.sequence > after)
                    .order_by(AccessLogRow.sequence)
                    .limit(batch)
                )
            )
            entries += [_chained(row) for row in page]
            if len(page) < batch:
                return entries
            after = page[-1].sequence

    return verify_chain(rows(), (head.sequence, head.entry_hash) if head else None)


def heads(session: Session, after_fin: str | None, limit: int) -> list[ChainHeadRow]:
    query = select(ChainHeadRow)
    if after_fin is not None:
        query = query.where(tuple_(ChainHeadRow.fin) > tuple_(after_fin))
    return list(session.scalars(query.order_by(ChainHeadRow.fin).limit(limit)))
