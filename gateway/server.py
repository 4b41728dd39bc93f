"""`python -m gateway`: the gateway on uvicorn (uvloop and httptools), JSON logs, graceful
shutdown on SIGTERM (in-flight requests finish within ASAN_SHUTDOWN_GRACE_SECONDS, then the
channels close)."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from collections.abc import Iterator

import uvicorn

from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.contracts import Contracts
from services.runtime.config import ConfigError
from services.runtime.logs import configure_logging
from services.runtime.tls import read_valid_material
from services.runtime.tracing import configure_tracing


class GatewayServer(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT handled by a graceful shutdown ends
    the process with status 0, as the services do (uvicorn raises the signal again, so the
    process would end killed by it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {signum: signal.signal(signum, self.handle_exit) for signum in signals}
        try:
            yield
        finally:
            for signum, handler in original.items():
                signal.signal(signum, handler)


def uvicorn_config(app: Gateway, config: GatewayConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        # Logs go through the root JSON handler; the gateway logs each request itself.
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=config.forwarded_allow_ips,
        timeout_graceful_shutdown=math.ceil(config.grace_seconds),
    )


def main() -> int:
    contracts = Contracts.installed()
    try:
        config = GatewayConfig.from_env(contracts.packages)
        configure_logging("gateway", config.log_level)
        configure_tracing("gateway")
        if config.tls is not None:  # no certificate: stop now, not at the first call
            read_valid_material(config.tls)
        gateway = Gateway(config, contracts)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    server = GatewayServer(uvicorn_config(gateway, config))
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
