"""ASAN müraciət as the runtime runs it: ports, tables, migrations, servicers, background tasks."""

from __future__ import annotations

from pathlib import Path

import grpc

from asan.appeals.v1 import appeals_service_pb2, appeals_service_pb2_grpc
from services.appeals.links import PaymentLinks
from services.appeals.metrics import AppealsMetrics
from services.appeals.refunding import RefundingAnswer
from services.appeals.servicer import AppealsServicer
from services.appeals.submission import Submission
from services.appeals.sweeps import deadline_tasks
from services.appeals.tables import Base, runtime_tables
from services.runtime.config import env_float, env_str
from services.runtime.idempotency import Idempotency
from services.runtime.server import Background, ServiceDefinition, ServiceRuntime

SERVICE_NAME = appeals_service_pb2.DESCRIPTOR.services_by_name["AppealsService"].full_name


def register(server: grpc.aio.Server, runtime: ServiceRuntime) -> list[Background]:
    metrics = AppealsMetrics(runtime.registry, runtime.database)
    idempotency = Idempotency(runtime_tables.idempotency_keys)
    # An appeal about a payment is checked with payment, with the citizen's own token.
    payments = PaymentLinks(env_str("APPEALS_PAYMENT_TARGET", "127.0.0.1:50051"))
    submission = Submission(runtime.database, idempotency, payments)
    # An answer's refund is asked of payment with the answering officer's own token.
    refunding = RefundingAnswer(runtime.database, idempotency, payments)
    servicer = AppealsServicer(runtime.database, idempotency, submission, refunding, metrics)
    appeals_service_pb2_grpc.add_AppealsServiceServicer_to_server(servicer, server)
    sweep_seconds = env_float("APPEALS_DEADLINE_SWEEP_SECONDS", 300.0)
    return [*deadline_tasks(metrics, sweep_seconds), payments.hold_until_shutdown]


definition = ServiceDefinition(
    name="appeals",
    grpc_port=50053,
    metrics_port=9103,
    metadata=Base.metadata,
    runtime_tables=runtime_tables,
    migrations=Path(__file__).parent / "migrations",
    grpc_services=(SERVICE_NAME,),
    # The catalogue and the statistics are open; SubmitAppeal is open only to tell a caller
    # without ASAN Login why anonymous appeals are refused.
    register=register,
)
