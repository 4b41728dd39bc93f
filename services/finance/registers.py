"""Calls to the data providers (asan.finance.v1.DataProviderService) over gRPC, with finance's
own service token: one channel per target, latency and errors counted per provider.

Targets come from FINANCE_PROVIDER_TARGETS ("payment=payment:50051,agro=agro:50055,...");
with FINANCE_SANDBOX_REGISTERS on, the registers outside the suite without a target of their
own are finance's own sandbox adapters (services.finance.sandbox) at its own address, read
when a call is made: the port it listens on is known only once it has started (0 in tests).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import date

import grpc

from asan.finance.v1 import data_provider_pb2, data_provider_pb2_grpc, finance_pb2
from services.finance.catalogue import SANDBOX_PROVIDERS, SCOPES, providers_of
from services.finance.documents import ScopeRecords
from services.finance.metrics import FinanceMetrics
from services.runtime import protos
from services.runtime.clients import service_channel
from services.runtime.config import ConfigError
from services.runtime.credentials import ServiceCredentials
from services.runtime.enums import name_of, proto_value
from services.runtime.errors import Unavailable

log = logging.getLogger("asan.finance.registers")


def parse_targets(setting: str) -> dict[str, str]:
    """ "tax=host:port,employment=host:port" as a mapping; ConfigError names what is wrong."""
    targets: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in setting.split(","))):
        provider, _, target = item.partition("=")
        if not provider or not target:
            raise ConfigError(f"FINANCE_PROVIDER_TARGETS: {item!r} is not provider=host:port")
        targets[provider.strip()] = target.strip()
    return targets


def own_address(port: Callable[[], int]) -> Callable[[], str]:
    """Finance's own server on this host, at the port it listens on when asked."""
    return lambda: f"127.0.0.1:{port()}"


def provider_down(providers: list[str]) -> Unavailable:
    return Unavailable(
        message="A register did not answer; nothing was fetched. Try again later with a new request_id.",
        reason="PROVIDER_UNAVAILABLE",
        metadata={"providers": ",".join(providers)},
    )


class Registers:
    def __init__(
        self,
        targets: Mapping[str, str],
        credentials: ServiceCredentials,
        metrics: FinanceMetrics,
        sandbox_at: Callable[[], str] | None = None,
    ) -> None:
        """`targets` by provider; `sandbox_at`, when the sandbox registers are on, the address
        of the server hosting them, for the sandbox providers without a target of their own."""
        self.targets = dict(targets)
        self.sandbox = frozenset(SANDBOX_PROVIDERS) - set(self.targets) if sandbox_at else frozenset()
        self.sandbox_at = sandbox_at
        self.credentials = credentials
        self.metrics = metrics
        self._channels: dict[str, grpc.aio.Channel] = {}

    def serves(self, scope: str) -> bool:
        return self._reaches(SCOPES[scope].provider)

    def _reaches(self, provider: str) -> bool:
        return provider in self.targets or provider in self.sandbox

    def target(self, provider: str) -> str:
        if provider in self.sandbox and self.sandbox_at is not None:
            return self.sandbox_at()
        return self.targets[provider]

    def _stub(self, provider: str) -> data_provider_pb2_grpc.DataProviderServiceAsyncStub:
        target = self.target(provider)
        if target not in self._channels:
            self._channels[target] = service_channel(target)
        return data_provider_pb2_grpc.DataProviderServiceStub(self._channels[target])

    async def fetch(
        self, fin: str, consent_id: str, scopes: tuple[str, ...], period: tuple[date, date]
    ) -> list[ScopeRecords]:
        """The records of every scope, from every provider at once; Unavailable if any provider
        fails (down, late, or refusing finance's token), so that a package is whole or not made."""
        asked = providers_of(scopes)
        missing = [provider for provider in asked if not self._reaches(provider)]
        if missing:
            raise provider_down(missing)
        answers = await asyncio.gather(
            *(
                self._ask(provider, fin, consent_id, provider_scopes, period)
                for provider, provider_scopes in asked.items()
            ),
            return_exceptions=True,
        )
        failed = [
            provider
            for provider, answer in zip(asked, answers, strict=True)
            if isinstance(answer, BaseException)
        ]
        for provider, answer in zip(asked, answers, strict=True):
            if isinstance(answer, grpc.aio.AioRpcError):
                log.warning("provider call failed", extra={"provider": provider, "code": answer.code().name})
            elif isinstance(answer, BaseException):
                log.error("provider call failed", extra={"provider": provider}, exc_info=answer)
        if failed:
            raise provider_down(failed)
        parts: list[ScopeRecords] = []
        for answer in answers:
            assert not isinstance(answer, BaseException)
            parts += answer
        order = {scope: index for index, scope in enumerate(scopes)}
        return sorted(parts, key=lambda part: order[part.scope])

    async def _ask(
        self, provider: str, fin: str, consent_id: str, scopes: tuple[str, ...], period: tuple[date, date]
    ) -> list[ScopeRecords]:
        request = data_provider_pb2.GetSubjectRecordsRequest(
            provider=provider,
            fin=fin,
            scopes=[proto_value(finance_pb2.Scope, "SCOPE_", scope) for scope in scopes],
            period=finance_pb2.DatePeriod(
                start_date=protos.proto_date(period[0]), end_date=protos.proto_date(period[1])
            ),
            consent_id=consent_id,
        )
        started = time.perf_counter()
        try:
            answer = await self._stub(provider).GetSubjectRecords(
                request, metadata=self.credentials.metadata(), wait_for_ready=True
            )
        except grpc.aio.AioRpcError as error:
            self.metrics.provider_seconds.labels(provider, "error").observe(time.perf_counter() - started)
            self.metrics.provider_errors.labels(provider, error.code().name).inc()
            raise
        self.metrics.provider_seconds.labels(provider, "ok").observe(time.perf_counter() - started)
        return _minimised(provider, scopes, answer)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


def _minimised(
    provider: str, scopes: tuple[str, ...], answer: data_provider_pb2.SubjectRecords
) -> list[ScopeRecords]:
    """Only the scopes asked and their fields, whatever a provider sent: finance passes on no
    more than the consent covers."""
    parts: list[ScopeRecords] = []
    for part in answer.scopes:
        try:
            scope = name_of(finance_pb2.Scope, part.scope, "SCOPE_")
        except ValueError:  # a scope of a newer contract: not one asked for
            continue
        if scope not in scopes or part.provider != provider:
            continue
        allowed = SCOPES[scope].fields
        records = tuple({k: v for k, v in record.fields.items() if k in allowed} for record in part.records)
        parts.append(ScopeRecords(scope, provider, records))
    return parts
