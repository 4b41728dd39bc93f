"""Tables that every service's database has: the outbox, the inbox, idempotency keys and the
audit trail (services.runtime.audit).

A service calls `define_runtime_tables(metadata)` on its own MetaData, and its first
migration creates them with `op.create_table` as they are defined here (copy an existing
service's: a revision states its own DDL). A later change here comes with a revision in every
service; tests/lifecycle fails for the service that lacks it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

from services.runtime.db import UtcDateTime


@dataclass(frozen=True)
class RuntimeTables:
    outbox: Table
    inbox: Table
    idempotency_keys: Table
    audit_records: Table


# "<kind>:<subject>" with a subject of up to 255 characters (services.runtime.auth).
SCOPE_LENGTH = 300


def define_runtime_tables(metadata: MetaData) -> RuntimeTables:
    outbox = Table(
        "outbox",
        metadata,
        # Relay order: the order in which the state changes committed.
        Column(
            "position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        # Serialised asan.common.v1.EventEnvelope.
        Column("envelope", LargeBinary, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("published_at", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        # Set when the relay gave up on the row for a fault of its own, and why: the rows
        # after it went on (services.runtime.events). NULL again once released.
        Column("set_aside_at", UtcDateTime, nullable=True),
        Column("last_error", String(500), nullable=True),
        Index("ix_outbox_unpublished", "published_at", "position"),
    )
    inbox = Table(
        "inbox",
        metadata,
        # One row per event a consumer has applied: a redelivery finds it and does nothing.
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("received_at", UtcDateTime, nullable=False),
        # The retention purge deletes by age.
        Index("ix_inbox_received_at", "received_at"),
    )
    idempotency_keys = Table(
        "idempotency_keys",
        metadata,
        # Whose key (services.runtime.idempotency.caller_scope): "citizen:5ZK3T9P", or
        # "anonymous:" and the resource acted on; "" for keys from before scopes (and from a
        # previous release during a rolling upgrade, which does not write it).
        Column("scope", String(SCOPE_LENGTH), primary_key=True, server_default=""),
        Column("request_id", String(36), primary_key=True),
        # Full gRPC method name: the same id on another method is a client bug.
        Column("method", String(200), nullable=False),
        # Hash of the request with request_id cleared and of the caller's identity.
        Column("fingerprint", String(64), nullable=False),
        # Serialised response; NULL while the first call is still in progress.
        Column("response", LargeBinary, nullable=True),
        Column("created_at", UtcDateTime, nullable=False, index=True),
    )
    audit_records = Table(
        "audit_records",
        metadata,
        # Written in the transaction of the audited call, never updated; deleted only by the
        # retention purge after ASAN_RETENTION_AUDIT_DAYS (on PostgreSQL a trigger refuses
        # anything else: services.runtime.migrations.create_audit_records_table).
        Column("id", String(36), primary_key=True),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("actor_kind", String(20), nullable=False),
        Column("actor_subject", String(255), nullable=False),
        # The agency the actor acted for; NULL for an admin of the whole suite.
        Column("agency_code", String(20), nullable=True),
        Column("method", String(200), nullable=False),
        Column("resource", String(300), nullable=False),
        Column("outcome", String(20), nullable=False),
        Column("request_id", String(128), nullable=False),
        Column("trace_id", String(32), nullable=True),
        # An agency's admin lists their agency's records, newest first; the purge goes by age.
        Index("ix_audit_records_agency_recorded", "agency_code", "recorded_at", "id"),
        Index("ix_audit_records_recorded_at", "recorded_at"),
    )
    return RuntimeTables(
        outbox=outbox, inbox=inbox, idempotency_keys=idempotency_keys, audit_records=audit_records
    )
