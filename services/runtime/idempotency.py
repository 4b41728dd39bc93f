"""Idempotent mutating calls by client-chosen `request_id` (AIP-155).

A completed key is kept for `RETENTION` (48 hours; ASAN_RETENTION_IDEMPOTENCY_HOURS, at least
24), then purged by the runtime (services.runtime.retention): a replay within it returns the
first response; the same id with other parameters, on another method or by another
caller is INVALID_ARGUMENT, never a silent replay. The key row is written in the same
transaction as the effect, so concurrent replays make exactly one effect.

Calls with an outside effect between two transactions (a card charge) use the two
phases directly: `claim` writes a pending key in the first transaction, `complete`
stores the response in the second, and a retry of a pending key resumes the call
(the outside party must itself be idempotent by the same key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from services.runtime.auth import Principal
from services.runtime.context import current_grpc_method
from services.runtime.db import Database, delete_in_batch, utcnow
from services.runtime.errors import FieldViolation, InvalidArgument

M = TypeVar("M", bound=Message)

RETENTION = timedelta(hours=48)


class Pending(Enum):
    """The first call with this key has not finished yet."""

    PENDING = "pending"


PENDING = Pending.PENDING


@dataclass(frozen=True)
class IdempotencyKey:
    request_id: str
    method: str
    fingerprint: str


def idempotency_key(
    request: M,
    principal: Principal | None,
    *,
    request_id_field: str = "request_id",
    scrub: Callable[[M], None] | None = None,
    method: str | None = None,
) -> IdempotencyKey:
    """The key of a call: its request_id, plus a fingerprint of everything else it says.

    The method is the current call's; outside a call it must be named (`method=`), never a key
    on no method. `scrub` edits the copy that is fingerprinted, to leave out what must not be
    kept even as a hash (a card number: its digits are few enough to be found again from an
    unkeyed hash)."""
    method = method if method is not None else current_grpc_method()
    body = type(request)()
    body.CopyFrom(request)
    request_id: str = getattr(request, request_id_field)
    body.ClearField(request_id_field)
    if scrub is not None:
        scrub(body)
    digest = hashlib.sha256()
    digest.update(method.encode())
    digest.update(b"\0")
    if principal is not None:
        digest.update(f"{principal.kind.value}:{principal.subject}".encode())
    digest.update(b"\0")
    digest.update(body.SerializeToString(deterministic=True))
    return IdempotencyKey(request_id=request_id, method=method, fingerprint=digest.hexdigest())


def _reused() -> InvalidArgument:
    return InvalidArgument(
        message="This request_id was already used for a different request.",
        reason="REQUEST_ID_REUSED",
        violations=[
            FieldViolation(
                "request_id",
                "Already used with other parameters; use a new UUID for a new request, "
                "or repeat the first request unchanged to get its result.",
                "REQUEST_ID_REUSED",
            )
        ],
    )


class Idempotency:
    def __init__(self, table: Table) -> None:
        self.table = table

    def claim(self, session: Session, key: IdempotencyKey) -> bytes | Pending | None:
        """None: the key is new and now claimed (pending). Bytes: the stored response to replay.
        PENDING: an earlier call with this key has not completed."""
        row = session.execute(
            select(self.table.c.method, self.table.c.fingerprint, self.table.c.response)
            .where(self.table.c.request_id == key.request_id)
            .with_for_update()
        ).first()
        if row is None:
            session.execute(
                insert(self.table).values(
                    request_id=key.request_id,
                    method=key.method,
                    fingerprint=key.fingerprint,
                    response=None,
                    created_at=utcnow(),
                )
            )
            return None
        if row.method != key.method or row.fingerprint != key.fingerprint:
            raise _reused()
        if row.response is None:
            return PENDING
        response: bytes = row.response
        return response

    def peek(self, session: Session, key: IdempotencyKey) -> bytes | Pending | None:
        """What `claim` would answer, without claiming: for calls that must ask another service
        before they write anything (a new key stays unwritten until `run` commits the effect).
        Raises REQUEST_ID_REUSED like `claim`."""
        row = session.execute(
            select(self.table.c.method, self.table.c.fingerprint, self.table.c.response).where(
                self.table.c.request_id == key.request_id
            )
        ).first()
        if row is None:
            return None
        if row.method != key.method or row.fingerprint != key.fingerprint:
            raise _reused()
        if row.response is None:
            return PENDING
        response: bytes = row.response
        return response

    def complete(self, session: Session, request_id: str, response: Message) -> None:
        """Stores the response of the call under `request_id`; later replays return it."""
        session.execute(
            update(self.table)
            .where(self.table.c.request_id == request_id)
            .values(response=response.SerializeToString())
        )

    def is_pending(self, session: Session, request_id: str) -> bool:
        """Whether a call under `request_id` started and has no response yet."""
        response = session.execute(
            select(self.table.c.response).where(self.table.c.request_id == request_id).with_for_update()
        ).first()
        return response is not None and response[0] is None

    async def run(
        self, database: Database, key: IdempotencyKey, response_type: type[M], effect: Callable[[Session], M]
    ) -> M:
        """Runs `effect` once per key, in one transaction with the key; replays return the
        first response."""

        def unit(session: Session) -> M:
            claimed = self.claim(session, key)
            if isinstance(claimed, bytes):
                return response_type.FromString(claimed)
            if claimed is PENDING:  # only two-phase calls leave a key pending
                raise RuntimeError(f"idempotency key {key.request_id} of {key.method} is pending")
            response = effect(session)
            self.complete(session, key.request_id, response)
            return response

        # A concurrent call with the same key may commit first (PostgreSQL): the rerun replays it.
        return await database.run_retrying_on_conflict(unit)

    def purge(
        self,
        session: Session,
        now: datetime | None = None,
        *,
        older_than: timedelta = RETENTION,
        limit: int | None = None,
    ) -> int:
        """Deletes completed keys older than `older_than` (at most `limit` of them); returns how
        many. A pending key stays until its call is settled, so that a late retry still resumes it."""
        cutoff = (now or utcnow()) - older_than
        return delete_in_batch(
            session,
            self.table,
            (self.table.c.created_at < cutoff) & self.table.c.response.is_not(None),
            limit,
        )
