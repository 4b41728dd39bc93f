"""ASAN Finans as the runtime runs it: ports, tables, migrations, servicers, background tasks."""

from __future__ import annotations

from pathlib import Path

import grpc

from asan.finance.v1 import (
    data_provider_pb2,
    data_provider_pb2_grpc,
    finance_service_pb2,
    finance_service_pb2_grpc,
)
from services.finance.expiry import expiry_task
from services.finance.metrics import FinanceMetrics
from services.finance.registers import Registers, own_address, parse_targets
from services.finance.sandbox import SandboxRegisters
from services.finance.servicer import FinanceServicer
from services.finance.tables import Base, runtime_tables
from services.runtime.config import env_bool, env_float, env_str
from services.runtime.credentials import ServiceCredentials
from services.runtime.server import Background, ServiceDefinition, ServiceRuntime
from services.runtime.signing import Ed25519Signer

SERVICE_NAME = finance_service_pb2.DESCRIPTOR.services_by_name["FinanceService"].full_name
PROVIDER_SERVICE_NAME = data_provider_pb2.DESCRIPTOR.services_by_name["DataProviderService"].full_name
# The agency whose service account finance calls the providers as (ASAN Xidmət's agency).
FINANCE_AGENCY = "DXSIDA"


def signer_from_env() -> Ed25519Signer:
    return Ed25519Signer.from_env("FINANCE_SIGNING_KEY_FILE", "finance_signing_ed25519.pem")


def register(server: grpc.aio.Server, runtime: ServiceRuntime) -> list[Background]:
    metrics = FinanceMetrics(runtime.registry, runtime.database)
    credentials = ServiceCredentials.from_env("finance", runtime.config.auth, default_agency=FINANCE_AGENCY)
    sandbox = env_bool("FINANCE_SANDBOX_REGISTERS", True)
    targets = parse_targets(env_str("FINANCE_PROVIDER_TARGETS", ""))
    # The sandbox registers are this server's own: its address is read at call time, since the
    # configured port may be 0 until the server has started.
    sandbox_at = own_address(lambda: runtime.port) if sandbox else None
    registers = Registers(targets, credentials, metrics, sandbox_at)
    servicer = FinanceServicer(runtime.database, registers, signer_from_env(), metrics)
    finance_service_pb2_grpc.add_FinanceServiceServicer_to_server(servicer, server)
    if sandbox:
        data_provider_pb2_grpc.add_DataProviderServiceServicer_to_server(SandboxRegisters(), server)
    sweep_seconds = env_float("FINANCE_EXPIRY_SWEEP_SECONDS", 60.0)
    return [expiry_task(metrics, sweep_seconds)]


definition = ServiceDefinition(
    name="finance",
    grpc_port=50054,
    metrics_port=9104,
    metadata=Base.metadata,
    runtime_tables=runtime_tables,
    migrations=Path(__file__).parent / "migrations",
    grpc_services=(SERVICE_NAME, PROVIDER_SERVICE_NAME),
    register=register,
    # `make run`: the suite's own registers are payment's and agro's servers; the sandbox
    # (FINANCE_SANDBOX_REGISTERS, on by default) serves the registers outside the suite.
    local_server_env={"FINANCE_PROVIDER_TARGETS": "payment={payment},agro={agro}"},
)
