"""ASAN Viza as the runtime runs it: ports, tables, migrations, servicers, background tasks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc

from asan.visa.v1 import visa_service_pb2, visa_service_pb2_grpc
from services.runtime.config import env_bool, env_float, env_str
from services.runtime.credentials import ServiceCredentials
from services.runtime.server import Background, ServiceDefinition, ServiceRuntime
from services.visa.access import DECIDING_AGENCY
from services.visa.fee_checks import FeeChecks
from services.visa.metrics import VisaMetrics
from services.visa.notices import stay_ending_task
from services.visa.overdue import overdue_task
from services.visa.payments import FeeDesk
from services.visa.personal_data import applicants_rule
from services.visa.rendering import DocumentRenderer
from services.visa.servicer import VisaServicer
from services.visa.signing import VisaSigner
from services.visa.tables import Base, runtime_tables

SERVICE_NAME = visa_service_pb2.DESCRIPTOR.services_by_name["VisaService"].full_name


def register(server: grpc.aio.Server, runtime: ServiceRuntime) -> list[Background]:
    metrics = VisaMetrics(runtime.registry, runtime.database)
    # Visa pays through payment as DMX's service account: the e-visa fees are DMX's.
    credentials = ServiceCredentials.from_env("visa", runtime.config.auth, default_agency=DECIDING_AGENCY)
    fees = FeeDesk(env_str("VISA_PAYMENT_TARGET", "127.0.0.1:50051"), credentials)
    renderer = DocumentRenderer.from_env()
    signer = VisaSigner.from_env()
    servicer = VisaServicer(runtime.database, fees, signer, metrics, renderer)
    fee_checks = FeeChecks(
        runtime.database,
        fees,
        signer,
        sandbox=env_bool("VISA_SANDBOX_DECISIONS", False),
        check_after=timedelta(seconds=env_float("VISA_PAYMENT_CHECK_AFTER_SECONDS", 7200.0)),
    )
    visa_service_pb2_grpc.add_VisaServiceServicer_to_server(servicer, server)
    sweep_seconds = env_float("VISA_OVERDUE_SWEEP_SECONDS", 60.0)
    return [
        overdue_task(metrics, sweep_seconds),
        stay_ending_task(env_float("VISA_STAY_SWEEP_SECONDS", 600.0)),
        fee_checks.task(env_float("VISA_PAYMENT_CHECK_SECONDS", 300.0)),
        fees.hold_until_shutdown,
        renderer.hold_until_shutdown,
    ]


definition = ServiceDefinition(
    name="visa",
    grpc_port=50052,
    metrics_port=9102,
    metadata=Base.metadata,
    runtime_tables=runtime_tables,
    migrations=Path(__file__).parent / "migrations",
    grpc_services=(SERVICE_NAME,),
    # Applicants have no ASAN Login: the contract marks the methods they use anonymous.
    register=register,
    # Locally, sandbox passports (SBXA..., SBXR...) are decided without an officer.
    local_worker_env={"VISA_SANDBOX_DECISIONS": "true"},
    personal_data=(applicants_rule,),
)
