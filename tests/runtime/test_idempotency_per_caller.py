"""Idempotency keys are the caller's own (scoped by principal, or by the resource an anonymous
call acts on), and the keys written before scopes existed still answer their own caller."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.orm import Session

from asan.payment.v1 import payment_pb2, payment_service_pb2
from asan.visa.v1 import visa_service_pb2
from services.payment.service import definition as payment
from services.payment.tables import runtime_tables
from services.runtime.auth import Principal, PrincipalKind
from services.runtime.db import Database, utcnow
from services.runtime.idempotency import LEGACY_SCOPE, PENDING, Idempotency, caller_scope, idempotency_key
from services.runtime.migrations import upgrade
from services.runtime.server import ServiceDefinition
from services.visa.service import definition as visa

CANCEL = "/asan.payment.v1.PaymentService/CancelPayment"
A = Principal(PrincipalKind.CITIZEN, "5ZK3T9P")
B = Principal(PrincipalKind.CITIZEN, "7QW2E4R")
KEYS = runtime_tables.idempotency_keys


def _cancel(request_id: str) -> payment_service_pb2.CancelPaymentRequest:
    return payment_service_pb2.CancelPaymentRequest(payment_id=str(uuid.uuid4()), request_id=request_id)


def test_a_callers_scope_is_their_kind_and_subject_or_the_resource_acted_on() -> None:
    assert caller_scope(A) == "citizen:5ZK3T9P"
    assert caller_scope(Principal(PrincipalKind.SERVICE, "visa", agency_code="DMX")) == "service:visa"
    assert caller_scope(None, "payment/3f0c1e9a") == "anonymous:payment/3f0c1e9a"
    assert caller_scope(None) == "anonymous:"
    assert len(caller_scope(None, "x" * 10_000)) <= 300  # unchecked input, kept to the column


def test_one_request_id_is_a_key_of_each_caller(database_url: str) -> None:
    upgrade(database_url, payment.migrations)
    database = Database(database_url, threads=1)
    keys = Idempotency(KEYS)
    request = _cancel(str(uuid.uuid4()))
    of_a = idempotency_key(request, A, method=CANCEL)
    of_b = idempotency_key(request, B, method=CANCEL)
    try:
        assert database.run_sync(lambda s: keys.claim(s, of_a)) is None
        assert database.run_sync(lambda s: keys.claim(s, of_b)) is None  # B's own, not A's
        database.run_sync(lambda s: keys.complete(s, of_a, payment_pb2.Payment(payment_id="a")))
        assert (
            database.run_sync(lambda s: keys.claim(s, of_a))
            == payment_pb2.Payment(payment_id="a").SerializeToString()
        )
        assert database.run_sync(lambda s: keys.claim(s, of_b)) is PENDING
    finally:
        database.close()


def test_a_key_from_before_scopes_answers_its_own_caller_and_nobody_else(database_url: str) -> None:
    upgrade(database_url, payment.migrations)
    database = Database(database_url, threads=1)
    keys = Idempotency(KEYS)
    request = _cancel(str(uuid.uuid4()))
    of_a = idempotency_key(request, A, method=CANCEL)
    first = payment_pb2.Payment(payment_id="first")

    def legacy_row(session: Session) -> None:  # as the previous release wrote it
        session.execute(
            insert(KEYS).values(
                scope=LEGACY_SCOPE,
                request_id=of_a.request_id,
                method=of_a.method,
                fingerprint=of_a.fingerprint,
                response=first.SerializeToString(),
                created_at=utcnow(),
            )
        )

    try:
        database.run_sync(legacy_row)
        # B's call with A's request_id is B's own new key: A's legacy key is not B's.
        assert database.run_sync(lambda s: keys.claim(s, idempotency_key(request, B, method=CANCEL))) is None
        assert database.run_sync(lambda s: keys.peek(s, of_a)) == first.SerializeToString()
        assert database.run_sync(lambda s: keys.claim(s, of_a)) == first.SerializeToString()
        scopes = database.run_sync(
            lambda s: sorted(
                s.execute(select(KEYS.c.scope).where(KEYS.c.request_id == of_a.request_id)).scalars()
            )
        )
        assert scopes == ["citizen:5ZK3T9P", "citizen:7QW2E4R"]  # A's legacy key moved into A's scope
    finally:
        database.close()


OLD_KEYS_TABLE = """CREATE TABLE idempotency_keys (request_id VARCHAR(36) NOT NULL,
    method VARCHAR(200) NOT NULL, fingerprint VARCHAR(64) NOT NULL, response {binary},
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, CONSTRAINT pk_idempotency_keys PRIMARY KEY (request_id))"""


@pytest.mark.parametrize(
    ("service", "revision_before"), [(payment, "0003"), (visa, "0002")], ids=["payment", "visa"]
)
def test_the_upgrade_scopes_keys_and_the_previous_release_can_still_write_them(
    database_url: str, service: ServiceDefinition, revision_before: str
) -> None:
    upgrade(database_url, service.migrations, revision_before)
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:  # the table as revision 0001 made it before scopes
            connection.execute(text("DROP TABLE idempotency_keys"))
            binary = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
            connection.execute(text(OLD_KEYS_TABLE.format(binary=binary)))
            connection.execute(
                text("CREATE INDEX ix_idempotency_keys_created_at ON idempotency_keys (created_at)")
            )
            connection.execute(
                text("INSERT INTO idempotency_keys VALUES ('r-1', 'm', 'f', NULL, CURRENT_TIMESTAMP)")
            )

        upgrade(database_url, service.migrations)

        assert inspect(engine).get_pk_constraint("idempotency_keys")["constrained_columns"] == [
            "scope",
            "request_id",
        ]
        with engine.begin() as connection:
            # The previous release, still serving during the rollout, writes no scope.
            connection.execute(
                text(
                    "INSERT INTO idempotency_keys (request_id, method, fingerprint, created_at) "
                    "VALUES ('r-2', 'm', 'f', CURRENT_TIMESTAMP)"
                )
            )
            rows = connection.execute(
                text("SELECT scope, request_id FROM idempotency_keys ORDER BY request_id")
            )
            assert rows.all() == [("", "r-1"), ("", "r-2")]
    finally:
        engine.dispose()


def test_visas_upgrade_takes_the_payment_secret_out_of_stored_responses(database_url: str) -> None:
    upgrade(database_url, visa.migrations, "0003")
    stored = visa_service_pb2.CreateApplicationResponse(payment_confirmation_secret="an-old-secret")
    stored.application.application_number = "EV-2026-7K3P9QXM"
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(KEYS).values(
                    scope="anonymous:",
                    request_id="r-1",
                    method="/asan.visa.v1.VisaService/CreateApplication",
                    fingerprint="f",
                    response=stored.SerializeToString(),
                    created_at=utcnow(),
                )
            )
        upgrade(database_url, visa.migrations)
        with engine.begin() as connection:
            kept = visa_service_pb2.CreateApplicationResponse.FromString(
                connection.execute(select(KEYS.c.response)).scalar_one()
            )
    finally:
        engine.dispose()
    assert kept.payment_confirmation_secret == ""
    assert kept.application.application_number == "EV-2026-7K3P9QXM"
