"""The bare servers the benchmark measures the suite against, each alone in its process:

    python bench/echo.py grpc PORT    # a grpc.aio server answering /bench.Echo/Echo with the bytes it got
    python bench/echo.py http PORT    # uvicorn (uvloop, httptools) answering every request with a small JSON

No interceptors, no logs, no database: what the same client reaches when the server costs
almost nothing. SIGTERM stops either.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import grpc

ECHO_METHOD = "/bench.Echo/Echo"
HTTP_BODY = b'{"echo":"ok"}'


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def serve_grpc(port: int) -> None:
    server = grpc.aio.server()
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}  # raw bytes both ways
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0)


async def http_echo(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Any]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(HTTP_BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": HTTP_BODY})


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "grpc":
        asyncio.run(serve_grpc(port))
    else:
        import uvicorn

        uvicorn.run(
            http_echo,
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            lifespan="off",
            log_config=None,
            access_log=False,
        )


if __name__ == "__main__":
    main()
