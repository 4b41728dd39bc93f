"""The gateway's settings, from environment variables only (see the table in README.md)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.runtime.config import (
    AuthConfig,
    ConfigError,
    TlsConfig,
    access_log_per_second,
    backend_variable,
    env_float,
    env_int,
    env_str,
)

DEFAULT_PORT = 8080
# Beside the services' 9101... and the event workers' 9200.
DEFAULT_METRICS_PORT = 9190
_METHOD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def backends_from_env(packages: Iterable[str]) -> dict[str, str]:
    """host:port of the service of each proto package. The gateway keeps no table of services:
    whoever starts it says where they are (`make run` from services/suite.py, Kubernetes from
    the gateway's ConfigMap)."""
    targets = {}
    for package in sorted(set(packages)):
        variable = backend_variable(package)
        target = env_str(variable, "")
        if not target:
            raise ConfigError(f"{variable} must name the host:port of the {package} service")
        targets[package] = target
    return targets


def _positive(name: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value}")
    return value


def _not_negative(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be zero or more, got {value}")
    return value


def parse_route_deadlines(raw: str, variable: str = "GATEWAY_ROUTE_DEADLINES") -> dict[str, float]:
    """ "ConfirmPayment=30,asan.payment.v1.PaymentService.GetPayment=2" -> {name: seconds}."""
    deadlines: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, seconds = item.partition("=")
        name = name.strip()
        if not sep or not _METHOD_NAME.fullmatch(name):
            raise ConfigError(f"{variable}: expected Method=seconds, got {item!r}")
        try:
            deadlines[name] = _positive(variable, float(seconds))
        except ValueError:
            raise ConfigError(f"{variable}: {seconds.strip()!r} is not a number of seconds") from None
    return deadlines


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `per_second` requests on average, bursts of `burst`; 0 per second is off."""

    per_second: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.per_second > 0


@dataclass(frozen=True)
class GatewayConfig:
    host: str
    port: int
    # Prometheus's port: /metrics on its own, away from the API's port (0: any free one).
    metrics_port: int
    # Proto package ("asan.payment.v1") -> host:port of the service that serves it.
    backends: Mapping[str, str]
    deadline_seconds: float
    # Method name, short ("ConfirmPayment") or full ("asan.payment.v1.PaymentService.ConfirmPayment"),
    # -> its own deadline.
    route_deadlines: Mapping[str, float]
    max_body_bytes: int
    subject_rate: RateLimit
    address_rate: RateLimit
    cors_origins: tuple[str, ...]
    forwarded_allow_ips: str
    grace_seconds: float
    log_level: str
    auth: AuthConfig
    # Access log lines a second for requests answered below 400 (0: every request); the others
    # are always logged (services.runtime.logs.AccessLog).
    access_log_per_second: int = 0
    # Backend health checks of /readyz wait at most this long.
    readiness_timeout_seconds: float = 2.0
    # gRPC connections to each backend, taken in turn (gateway.backends).
    connections_per_backend: int = 4
    # Mutual TLS to the services with the gateway's own certificate (name "gateway"), unless
    # ASAN_TLS=off (services.runtime.tls).
    tls: TlsConfig | None = None

    @classmethod
    def from_env(cls, packages: Iterable[str]) -> GatewayConfig:
        """Settings for the services of `packages` (the proto packages the gateway serves)."""
        max_body = env_int("GATEWAY_MAX_BODY_BYTES", 1_048_576)
        if max_body <= 0:
            raise ConfigError(f"GATEWAY_MAX_BODY_BYTES must be positive, got {max_body}")
        origins = tuple(o.strip() for o in env_str("GATEWAY_CORS_ORIGINS", "").split(",") if o.strip())
        connections = env_int("GATEWAY_CONNECTIONS_PER_BACKEND", 4)
        if not 1 <= connections <= 64:
            raise ConfigError(f"GATEWAY_CONNECTIONS_PER_BACKEND must be 1 to 64, got {connections}")
        return cls(
            host=env_str("GATEWAY_HOST", "0.0.0.0"),  # noqa: S104 (a server's bind address)
            port=env_int("GATEWAY_PORT", DEFAULT_PORT),
            metrics_port=env_int("GATEWAY_METRICS_PORT", DEFAULT_METRICS_PORT),
            backends=backends_from_env(packages),
            deadline_seconds=_positive(
                "GATEWAY_DEADLINE_SECONDS", env_float("GATEWAY_DEADLINE_SECONDS", 10.0)
            ),
            route_deadlines=parse_route_deadlines(env_str("GATEWAY_ROUTE_DEADLINES", "")),
            max_body_bytes=max_body,
            subject_rate=RateLimit(
                _not_negative(
                    "GATEWAY_RATE_LIMIT_SUBJECT_PER_SECOND",
                    env_float("GATEWAY_RATE_LIMIT_SUBJECT_PER_SECOND", 10.0),
                ),
                max(1, env_int("GATEWAY_RATE_LIMIT_SUBJECT_BURST", 20)),
            ),
            address_rate=RateLimit(
                _not_negative(
                    "GATEWAY_RATE_LIMIT_ADDRESS_PER_SECOND",
                    env_float("GATEWAY_RATE_LIMIT_ADDRESS_PER_SECOND", 100.0),
                ),
                max(1, env_int("GATEWAY_RATE_LIMIT_ADDRESS_BURST", 200)),
            ),
            cors_origins=origins,
            forwarded_allow_ips=env_str("GATEWAY_FORWARDED_ALLOW_IPS", "127.0.0.1"),
            grace_seconds=env_float("ASAN_SHUTDOWN_GRACE_SECONDS", 10.0),
            log_level=env_str("ASAN_LOG_LEVEL", "INFO"),
            access_log_per_second=access_log_per_second(),
            auth=AuthConfig.from_env(),
            tls=TlsConfig.from_env(),
            connections_per_backend=connections,
        )

    def deadline_for(self, full_method: str) -> float:
        """The deadline of calls to a method ("asan.payment.v1.PaymentService.GetPayment")."""
        short = full_method.rsplit(".", 1)[-1]
        return (
            self.route_deadlines.get(full_method) or self.route_deadlines.get(short) or self.deadline_seconds
        )
