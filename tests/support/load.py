"""Load for resilience tests: callers that call back to back while the test breaks things,
and what each call came back with, over gRPC or HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

import grpc
import httpx
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class Outcome:
    """One call: when it ended (monotonic), its gRPC code name ("OK", "UNAVAILABLE", ...) or
    HTTP status ("200", "503"), and for a failure the ErrorInfo reason and whether it said when
    to retry (RetryInfo)."""

    ended: float
    code: str
    reason: str = ""
    retry_info: bool = False

    @property
    def ok(self) -> bool:
        return self.code in ("OK", "200")


def grpc_outcome(error: grpc.aio.AioRpcError | None) -> Outcome:
    if error is None:
        return Outcome(time.monotonic(), "OK")
    reason, retry_info = "", False
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reason = info.reason
        retry_info = retry_info or detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR)
    return Outcome(time.monotonic(), error.code().name, reason, retry_info)


def http_outcome(response: httpx.Response) -> Outcome:
    if response.status_code == 200:
        return Outcome(time.monotonic(), "200")
    body = response.json()
    details = body.get("details", []) if isinstance(body, dict) else []
    reason = next((d.get("reason", "") for d in details if d.get("@type", "").endswith("ErrorInfo")), "")
    retry_info = any(d.get("@type", "").endswith("RetryInfo") for d in details)
    return Outcome(time.monotonic(), str(response.status_code), reason, retry_info)


@dataclass
class Load:
    """`callers` tasks, each awaiting `call()` again as soon as it returns, from entering the
    block until `stop()` (or the block's end); `outcomes` in the order they ended."""

    call: Callable[[], Awaitable[Outcome]]
    callers: int
    outcomes: list[Outcome] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._caller()) for _ in range(self.callers)]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    async def _caller(self) -> None:
        while not self._stopping.is_set():
            self.outcomes.append(await self.call())

    async def stop(self) -> None:
        """Lets every call in flight end, then returns."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    def since(self, moment: float) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.ended >= moment]

    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]

    def codes(self) -> Counter[str]:
        return Counter(outcome.code for outcome in self.outcomes)

    async def wait_for_calls(self, count: int, within: float = 30) -> None:
        """Until `count` more calls have ended (the load is really running; on a loaded machine
        a few dozen a second)."""
        target = len(self.outcomes) + count
        deadline = time.monotonic() + within
        while len(self.outcomes) < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} calls ended within {within} s")
            await asyncio.sleep(0.01)
