"""E-agriculture as the runtime runs it: ports, tables, migrations, servicer, background tasks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import grpc

from asan.agro.v1 import agro_service_pb2, agro_service_pb2_grpc
from asan.finance.v1 import data_provider_pb2_grpc
from services.agro import provider
from services.agro.access import MINISTRY
from services.agro.announcements import announcement_task
from services.agro.metrics import AgroMetrics
from services.agro.payouts import SubsidyPayouts
from services.agro.servicer import AgroServicer
from services.agro.tables import Base, runtime_tables
from services.runtime.baku_time import baku_date
from services.runtime.config import ConfigError, env_float, env_int, env_str
from services.runtime.credentials import ServiceCredentials
from services.runtime.db import utcnow
from services.runtime.server import Background, ServiceDefinition, ServiceRuntime

SERVICE_NAME = agro_service_pb2.DESCRIPTOR.services_by_name["AgroService"].full_name


def today_from_env() -> Callable[[], date]:
    """Today in Baku; AGRO_SANDBOX_DATE (YYYY-MM-DD) fixes it, for the sandbox and tests, so
    that a window can be open whatever the real date."""
    fixed = env_str("AGRO_SANDBOX_DATE", "")
    if not fixed:
        return lambda: baku_date(utcnow())
    try:
        day = date.fromisoformat(fixed)
    except ValueError:
        raise ConfigError(f"AGRO_SANDBOX_DATE must be a date, YYYY-MM-DD: {fixed!r}") from None
    return lambda: day


def register(server: grpc.aio.Server, runtime: ServiceRuntime) -> list[Background]:
    metrics = AgroMetrics(runtime.registry, runtime.database)
    today = today_from_env()
    max_attempts = env_int("AGRO_PAYOUT_MAX_ATTEMPTS", 3)
    agro_service_pb2_grpc.add_AgroServiceServicer_to_server(
        AgroServicer(runtime.database, metrics, today, payout_max_attempts=max_attempts), server
    )
    # ASAN Finans's register of farmland and subsidies (finance's service account only).
    data_provider_pb2_grpc.add_DataProviderServiceServicer_to_server(
        provider.register(runtime.database), server
    )
    # Subsidies are paid through payment as the Ministry's (KTN) service account.
    payouts = SubsidyPayouts(
        runtime.database,
        env_str("AGRO_PAYMENT_TARGET", "127.0.0.1:50051"),
        ServiceCredentials.from_env("agro", runtime.config.auth, default_agency=MINISTRY),
        max_attempts=max_attempts,
        check_after=timedelta(seconds=env_float("AGRO_PAYOUT_CHECK_AFTER_SECONDS", 3600.0)),
    )
    return [
        announcement_task(today, env_float("AGRO_WINDOW_CHECK_SECONDS", 3600.0)),
        payouts.task(env_float("AGRO_PAYOUT_SEND_SECONDS", 30.0)),
        payouts.hold_until_shutdown,
    ]


definition = ServiceDefinition(
    name="agro",
    grpc_port=50055,
    metrics_port=9105,
    metadata=Base.metadata,
    runtime_tables=runtime_tables,
    migrations=Path(__file__).parent / "migrations",
    grpc_services=(SERVICE_NAME,),
    register=register,
)
