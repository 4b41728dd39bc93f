"""Idempotent mutating calls by client-chosen `request_id` (AIP-155).

A key is the caller's own: it is scoped by who calls (`caller_scope`: the principal's kind and
subject; an anonymous caller by the resource it acts on), as Stripe scopes keys per account,
so that another caller's request_id is simply a new key of theirs and tells them nothing.

A completed key is kept for `RETENTION` (48 hours; ASAN_RETENTION_IDEMPOTENCY_HOURS, at least
24), then purged by the runtime (services.runtime.retention): a replay within it returns the
first response; the same id with other parameters or on another method is INVALID_ARGUMENT,
never a silent replay. The key row is written in the same transaction as the effect, so
concurrent replays make exactly one effect.

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
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy import Row, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from services.runtime.auth import Principal
from services.runtime.context import current_grpc_method
from services.runtime.db import Database, delete_in_batch, transaction_observer, utcnow
from services.runtime.errors import FieldViolation, InvalidArgument

M = TypeVar("M", bound=Message)

RETENTION = timedelta(hours=48)


class Pending(Enum):
    """The first call with this key has not finished yet."""

    PENDING = "pending"


PENDING = Pending.PENDING


# The scope of keys written before keys were scoped per caller. Such a key is still found by
# the caller who made it: its fingerprint hashes the caller's identity (see `claim`).
LEGACY_SCOPE = ""
_MAX_ANONYMOUS_SCOPE = 200


@dataclass(frozen=True)
class IdempotencyKey:
    # Whose key it is (`caller_scope`): request ids are unique within a scope only.
    scope: str
    request_id: str
    method: str
    fingerprint: str


def caller_scope(principal: Principal | None, anonymous_scope: str = "") -> str:
    """Whose keys a call uses: "citizen:5ZK3T9P" for a verified caller; for a caller without a
    token, "anonymous:" and the resource the call acts on (a payment paid by its secret), so
    that strangers acting on different things do not share one space of keys. An anonymous call
    that creates (a visa application) has no resource yet and keeps the plain "anonymous:"
    scope: its request_id is a random UUID nobody else holds, and a retry that changed the
    request is better told REQUEST_ID_REUSED than made into a second one."""
    if principal is not None:
        return f"{principal.kind.value}:{principal.subject}"
    if len(anonymous_scope) > _MAX_ANONYMOUS_SCOPE:  # unchecked input: kept to the column's size
        anonymous_scope = hashlib.sha256(anonymous_scope.encode()).hexdigest()
    return f"anonymous:{anonymous_scope}"


def idempotency_key(
    request: M,
    principal: Principal | None,
    *,
    anonymous_scope: str = "",
    request_id_field: str = "request_id",
    scrub: Callable[[M], None] | None = None,
    method: str | None = None,
) -> IdempotencyKey:
    """The key of a call: its request_id in the caller's scope, plus a fingerprint of
    everything else it says.

    The method is the current call's; outside a call it must be named (`method=`), never a key
    on no method. `anonymous_scope` names the resource an anonymous call acts on (see
    `caller_scope`). `scrub` edits the copy that is fingerprinted, to leave out what must not
    be kept even as a hash (a card number: its digits are few enough to be found again from an
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
    return IdempotencyKey(
        scope=caller_scope(principal, anonymous_scope),
        request_id=request_id,
        method=method,
        fingerprint=digest.hexdigest(),
    )


def _answer(row: Row[Any, Any, Any, Any], key: IdempotencyKey) -> bytes | Pending:
    if row.method != key.method or row.fingerprint != key.fingerprint:
        raise _reused()
    if row.response is None:
        return PENDING
    response: bytes = row.response
    return response


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
        # The statements of every call, built once: building one costs more CPU than a round trip.
        columns = table.c
        self._find_rows = select(columns.scope, columns.method, columns.fingerprint, columns.response).where(
            columns.request_id == bindparam("request_id"),
            columns.scope.in_([bindparam("scope"), bindparam("legacy_scope")]),
        )
        self._find_locked = self._find_rows.with_for_update()
        self._insert_key = insert(table)
        self._store_response = (
            update(table)
            .where(
                columns.scope == bindparam("key_scope"),
                columns.request_id == bindparam("key_request_id"),
                columns.response.is_(None),
            )
            .values(response=bindparam("stored_response"))
        )

    def claim(self, session: Session, key: IdempotencyKey) -> bytes | Pending | None:
        """None: the key is new and now claimed (pending). Bytes: the stored response to replay.
        PENDING: an earlier call with this key has not completed."""
        row = self._find(session, key, lock=True)
        if row is None:
            session.execute(
                self._insert_key,
                {
                    "scope": key.scope,
                    "request_id": key.request_id,
                    "method": key.method,
                    "fingerprint": key.fingerprint,
                    "response": None,
                    "created_at": utcnow(),
                },
            )
            return None
        if row.scope != key.scope:  # a key from before scopes, by its own caller: it moves over
            session.execute(
                update(self.table)
                .where(self.table.c.scope == row.scope, self.table.c.request_id == key.request_id)
                .values(scope=key.scope)
            )
        answer = _answer(row, key)
        observer = transaction_observer.get()
        if isinstance(answer, bytes) and observer is not None:
            observer.replayed()  # the audit trail records the call as a replay
        return answer

    def peek(self, session: Session, key: IdempotencyKey) -> bytes | Pending | None:
        """What `claim` would answer, without claiming: for calls that must ask another service
        before they write anything (a new key stays unwritten until `run` commits the effect).
        Raises REQUEST_ID_REUSED like `claim`."""
        row = self._find(session, key, lock=False)
        return None if row is None else _answer(row, key)

    def _find(self, session: Session, key: IdempotencyKey, *, lock: bool) -> Row[Any, Any, Any, Any] | None:
        """The caller's row of this request_id; else a legacy row that the same caller wrote
        (same method and fingerprint, which hashes the caller); another caller's is no match."""
        rows = session.execute(
            self._find_locked if lock else self._find_rows,
            {"request_id": key.request_id, "scope": key.scope, "legacy_scope": LEGACY_SCOPE},
        ).all()
        own = next((row for row in rows if row.scope == key.scope), None)
        if own is not None:
            return own
        return next(
            (row for row in rows if (row.method, row.fingerprint) == (key.method, key.fingerprint)), None
        )

    def stored(self, session: Session, scope: str, request_id: str) -> bytes | Pending | None:
        """The key's state, its row locked until the transaction ends, without checking what was
        asked: for work that finishes a call on its caller's behalf (settling a payment whose
        answer was lost). None when there is no such key."""
        row = session.execute(
            select(self.table.c.response)
            .where(self.table.c.scope == scope, self.table.c.request_id == request_id)
            .with_for_update()
        ).first()
        if row is None:
            return None
        if row.response is None:
            return PENDING
        response: bytes = row.response
        return response

    def complete(self, session: Session, key: IdempotencyKey, response: Message) -> None:
        """Stores the response of the call; later replays return it."""
        self.complete_pending(session, key.scope, key.request_id, response)

    def complete_pending(self, session: Session, scope: str, request_id: str, response: Message) -> None:
        """Stores `response` as the answer of the key `request_id` in `scope`, if it has none yet."""
        session.execute(
            self._store_response,
            {
                "key_scope": scope,
                "key_request_id": request_id,
                "stored_response": response.SerializeToString(),
            },
        )

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
            self.complete(session, key, response)
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
