"""The PayoutService gRPC servicer: per method, read the request (`payout_requests`), authorise
(`payout_access`), call the flow (`payouts`), convert. Mutating methods are idempotent by
`request_id`."""

from __future__ import annotations

from typing import Any

import grpc

from asan.payment.v1 import payouts_pb2, payouts_pb2_grpc
from services.payment import payout_requests as requests
from services.payment.payouts import PayoutDesk, list_payouts, payout_message, visible_payout
from services.runtime.baku_time import BAKU
from services.runtime.db import Database
from services.runtime.idempotency import idempotency_key
from services.runtime.interceptors import require_principal
from services.runtime.paging import decode_keyset, encode_keyset, filter_fingerprint, page_size
from services.runtime.validation import Violations


class PayoutServicer(payouts_pb2_grpc.PayoutServiceServicer):
    def __init__(self, database: Database, desk: PayoutDesk) -> None:
        self.database = database
        self.desk = desk

    async def CreatePayout(
        self, request: payouts_pb2.CreatePayoutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payouts_pb2.Payout:
        principal = require_principal()
        new = requests.new_payout(request)
        return await self.desk.create(principal, idempotency_key(request, principal), new)

    async def GetPayout(
        self, request: payouts_pb2.GetPayoutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payouts_pb2.Payout:
        principal = require_principal()
        payout_id = requests.get(request)
        return await self.database.run(lambda s: payout_message(visible_payout(s, principal, payout_id)))

    async def ListPayouts(
        self, request: payouts_pb2.ListPayoutsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payouts_pb2.ListPayoutsResponse:
        principal = require_principal()
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        status = requests.status_filter(violations, request)
        fingerprint = filter_fingerprint("payouts", principal.kind, principal.subject, status)
        after = decode_keyset(violations, request.page_token, fingerprint)
        violations.raise_if_any()
        rows = await self.database.run(
            lambda s: [payout_message(row) for row in list_payouts(s, principal, status, after, size + 1)]
        )
        response = payouts_pb2.ListPayoutsResponse(payouts=rows[:size])
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = encode_keyset(
                last.create_time.ToDatetime(BAKU), last.payout_id, fingerprint
            )
        return response

    async def RetryPayout(
        self, request: payouts_pb2.RetryPayoutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payouts_pb2.Payout:
        principal = require_principal()
        corrected = requests.retry(request)
        key = idempotency_key(request, principal)
        return await self.desk.retry(principal, key, request.payout_id, corrected)
