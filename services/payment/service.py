"""ASAN ödəniş as the runtime runs it: ports, tables, migrations, servicers, background tasks."""

from __future__ import annotations

from pathlib import Path

import grpc

from asan.finance.v1 import data_provider_pb2_grpc
from asan.payment.v1 import (
    bill_service_pb2,
    bill_service_pb2_grpc,
    payment_service_pb2,
    payment_service_pb2_grpc,
    payouts_pb2,
    payouts_pb2_grpc,
)
from services.payment import provider
from services.payment.acquirer import acquirer_from_name
from services.payment.bill_metrics import BillGauges
from services.payment.bill_servicer import BillServicer
from services.payment.bills import bill_sweep_task
from services.payment.confirmation_key import ConfirmationKey
from services.payment.disbursement import disbursement_bank_from_name
from services.payment.expiry import sweeper_tasks
from services.payment.metrics import PaymentMetrics
from services.payment.payout_metrics import PayoutMetrics
from services.payment.payout_servicer import PayoutServicer
from services.payment.payouts import PayoutDesk, PayoutTimes
from services.payment.personal_data import foreign_passports_rule
from services.payment.servicer import PaymentServicer
from services.payment.settlement import SettlementTimes
from services.payment.tables import Base, runtime_tables
from services.runtime.config import env_str
from services.runtime.server import Background, ServiceDefinition, ServiceRuntime

SERVICE_NAME = payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name
PAYOUT_SERVICE_NAME = payouts_pb2.DESCRIPTOR.services_by_name["PayoutService"].full_name
BILL_SERVICE_NAME = bill_service_pb2.DESCRIPTOR.services_by_name["BillService"].full_name


def register(server: grpc.aio.Server, runtime: ServiceRuntime) -> list[Background]:
    metrics = PaymentMetrics(runtime.registry, runtime.database)
    acquirer = acquirer_from_name(env_str("PAYMENT_ACQUIRER", "sandbox"))
    times = SettlementTimes.from_env()
    servicer = PaymentServicer(
        runtime.database, acquirer, metrics, confirmation_key=ConfirmationKey.from_env(), settlement=times
    )
    payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(servicer, server)
    payouts = PayoutDesk(
        runtime.database,
        disbursement_bank_from_name(env_str("PAYMENT_DISBURSEMENT_BANK", "sandbox")),
        PayoutMetrics(runtime.registry, runtime.database),
        PayoutTimes.from_env(),
    )
    payouts_pb2_grpc.add_PayoutServiceServicer_to_server(PayoutServicer(runtime.database, payouts), server)
    bill_service_pb2_grpc.add_BillServiceServicer_to_server(BillServicer(runtime.database, metrics), server)
    runtime.registry.register(BillGauges(runtime.database))
    # ASAN Finans's register of state payments (finance's service account only).
    data_provider_pb2_grpc.add_DataProviderServiceServicer_to_server(
        provider.register(runtime.database), server
    )
    return [
        bill_sweep_task(),
        *payouts.tasks(),
        *sweeper_tasks(
            runtime.database,
            acquirer,
            idempotency=servicer.idempotency,
            metrics=metrics,
            refunds=servicer.refund_settlement,
            times=times,
        ),
    ]


definition = ServiceDefinition(
    name="payment",
    grpc_port=50051,
    metrics_port=9101,
    metadata=Base.metadata,
    runtime_tables=runtime_tables,
    migrations=Path(__file__).parent / "migrations",
    grpc_services=(SERVICE_NAME, BILL_SERVICE_NAME, PAYOUT_SERVICE_NAME),
    register=register,
    # ConfirmPayment: a foreign payer pays with the payment's confirmation secret instead of a token.
    personal_data=(foreign_passports_rule,),
)
