"""Configuration from environment variables only (see the table in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where cert-manager's Secret of a process is mounted (tls.crt, tls.key, ca.crt), and the
# trust domain of the suite's names in certificates (services.runtime.tls).
DEFAULT_TLS_DIR = "/etc/asan/tls"
DEFAULT_TRUST_DOMAIN = "asan.gov.az"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_names(name: str, default: str) -> frozenset[str]:
    """A comma-separated list of names: "gateway, visa" -> {"gateway", "visa"}."""
    return frozenset(part.strip() for part in env_str(name, default).split(",") if part.strip())


def access_log_per_second() -> int:
    """ASAN_ACCESS_LOG_PER_SECOND, for the services and the gateway alike: 100 by default."""
    value = env_int("ASAN_ACCESS_LOG_PER_SECOND", 100)
    if value < 0:
        raise ConfigError(f"ASAN_ACCESS_LOG_PER_SECOND must be 0 (every call) or more, got {value}")
    return value


def var_dir() -> Path:
    """Where local state lives on one machine: SQLite files, dev keys."""
    return Path(env_str("ASAN_VAR_DIR", "var")).resolve()


def database_url(service: str) -> str:
    """`<SERVICE>_DATABASE_URL`, by default a SQLite file under the var directory."""
    return env_str(f"{service.upper()}_DATABASE_URL", f"sqlite:///{var_dir() / f'{service}.sqlite3'}")


def domain_of(package: str) -> str:
    """The domain of a proto package: "asan.payment.v1" -> "payment", "gatewaytest.v1" -> "gatewaytest"."""
    parts = package.split(".")
    if parts[0] == "asan" and len(parts) > 1:
        return parts[1]
    return parts[0]


def backend_variable(package: str) -> str:
    """The variable that sets the address of a package's service: GATEWAY_BACKEND_PAYMENT."""
    return f"GATEWAY_BACKEND_{domain_of(package).upper()}"


@dataclass(frozen=True)
class AuthConfig:
    """How tokens are verified (and, locally, minted)."""

    issuer: str
    audience: str
    # One RS256 public key (PEM); a set of keys in `public_keys` takes its place.
    public_key_file: Path
    private_key_file: Path
    leeway_seconds: int
    # The keys trusted at once while they rotate: a JWKS file or a directory of PEM files.
    public_keys: Path | None = None

    @classmethod
    def from_env(cls) -> AuthConfig:
        keys = var_dir() / "keys"
        return cls(
            issuer=env_str("ASAN_AUTH_ISSUER", "https://login.asan.local"),
            audience=env_str("ASAN_AUTH_AUDIENCE", "asan-services"),
            public_key_file=Path(env_str("ASAN_AUTH_PUBLIC_KEY_FILE", str(keys / "auth_public.pem"))),
            private_key_file=Path(env_str("ASAN_AUTH_PRIVATE_KEY_FILE", str(keys / "auth_private.pem"))),
            leeway_seconds=env_int("ASAN_AUTH_LEEWAY_SECONDS", 30),
            public_keys=Path(keys_path) if (keys_path := env_str("ASAN_AUTH_PUBLIC_KEYS", "")) else None,
        )


@dataclass(frozen=True)
class TlsConfig:
    """Where a process's certificate, key and trusted authority are (services.runtime.tls),
    and the trust domain of the names in certificates."""

    certificate_file: Path
    private_key_file: Path
    authority_file: Path
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    # A client channel compares its files with what it loaded at most this often.
    reload_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> TlsConfig | None:
        """None when ASAN_TLS=off (plaintext, explicitly); the files' places otherwise."""
        if not env_bool("ASAN_TLS", True):
            return None
        folder = Path(env_str("ASAN_TLS_DIR", DEFAULT_TLS_DIR))
        config = cls(
            certificate_file=Path(env_str("ASAN_TLS_CERT_FILE", str(folder / "tls.crt"))),
            private_key_file=Path(env_str("ASAN_TLS_KEY_FILE", str(folder / "tls.key"))),
            authority_file=Path(env_str("ASAN_TLS_CA_FILE", str(folder / "ca.crt"))),
            trust_domain=env_str("ASAN_TLS_TRUST_DOMAIN", DEFAULT_TRUST_DOMAIN),
            reload_seconds=env_float("ASAN_TLS_RELOAD_SECONDS", 30.0),
        )
        if config.reload_seconds < 0:
            raise ConfigError("ASAN_TLS_RELOAD_SECONDS must be 0 or more")
        return config

    @classmethod
    def in_folder(cls, folder: Path, **settings: Any) -> TlsConfig:
        """cert-manager's layout: tls.crt, tls.key, ca.crt."""
        return cls(folder / "tls.crt", folder / "tls.key", folder / "ca.crt", **settings)


@dataclass(frozen=True)
class RetentionConfig:
    """How long the runtime keeps its own rows, and how often and in what batches it purges them."""

    interval_seconds: float
    # A replay within this time returns the first response (AIP-155 asks for at least a day).
    idempotency_hours: float
    # Only published events go; the relay never loses one that has not been.
    outbox_days: float
    # Longer than any redelivery of an event may come, or it would be applied twice.
    inbox_days: float
    batch_rows: int
    # Audit records (services.runtime.audit): five years by default. The central archive,
    # fed by the AuditRecorded events, keeps them beyond.
    audit_days: float = 1827.0

    @classmethod
    def from_env(cls) -> RetentionConfig:
        config = cls(
            interval_seconds=env_float("ASAN_RETENTION_INTERVAL_SECONDS", 3600.0),
            idempotency_hours=env_float("ASAN_RETENTION_IDEMPOTENCY_HOURS", 48.0),
            outbox_days=env_float("ASAN_RETENTION_OUTBOX_DAYS", 7.0),
            inbox_days=env_float("ASAN_RETENTION_INBOX_DAYS", 30.0),
            batch_rows=env_int("ASAN_RETENTION_BATCH_ROWS", 1000),
            audit_days=env_float("ASAN_RETENTION_AUDIT_DAYS", 1827.0),
        )
        if config.interval_seconds <= 0:
            raise ConfigError("ASAN_RETENTION_INTERVAL_SECONDS must be above 0")
        if config.idempotency_hours < 24:
            raise ConfigError("ASAN_RETENTION_IDEMPOTENCY_HOURS must be at least 24 (AIP-155)")
        if config.outbox_days <= 0 or config.inbox_days < 1:
            raise ConfigError(
                "ASAN_RETENTION_OUTBOX_DAYS must be above 0, ASAN_RETENTION_INBOX_DAYS at least 1"
            )
        if config.batch_rows < 1:
            raise ConfigError("ASAN_RETENTION_BATCH_ROWS must be at least 1")
        if config.audit_days < 365:
            raise ConfigError("ASAN_RETENTION_AUDIT_DAYS must be at least 365: audit records are evidence")
        return config


def _metrics_port(port: int, process_index: int | None) -> int:
    """The metrics port of one of several processes: its own, after the configured one (0, any
    free port, stays 0)."""
    return port + process_index if port and process_index else port


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of one service process; `<SERVICE>_` variables override the defaults."""

    service: str
    database_url: str
    grpc_host: str
    grpc_port: int
    metrics_port: int
    amqp_uri: str
    grace_seconds: float
    # On SIGTERM: seconds of answering NOT_SERVING while still serving, so that balancers and
    # clients move away before the server stops taking calls (then `grace_seconds` to finish).
    drain_seconds: float
    # Then, seconds of answering UNAVAILABLE (with a retry pushback) to calls that still arrive,
    # so that the gRPC core holds none when the server stops (services.runtime.server).
    refuse_seconds: float
    # A client connection older than this is asked to reconnect (GOAWAY), so that long-lived
    # connections (the gateway's, other services') spread over replicas that came up since.
    max_connection_age_seconds: float
    log_level: str
    # Access log lines a second for calls that succeeded (0: every call); failed and slow calls
    # are always logged (services.runtime.logs.AccessLog).
    access_log_per_second: int
    health_probe_seconds: float
    auth: AuthConfig
    retention: RetentionConfig
    # One of several processes of the service on one port (services.runtime.processes): the
    # gRPC port is shared (SO_REUSEPORT), the metrics port is the configured one + the index.
    process_index: int | None = None
    # TLS, mutual: None only when ASAN_TLS=off (services.runtime.tls).
    tls: TlsConfig | None = None
    # The names (in their certificates) of the callers it takes calls from, when TLS is on:
    # the peers its NetworkPolicy admits (deploy/k8s/README.md, "Network").
    allowed_callers: frozenset[str] = frozenset({"gateway"})
    # A second, plaintext port that serves gRPC health alone, for the kubelet's `grpc:` probes
    # (which speak no TLS); None: none (the health service is on the gRPC port in any case).
    probe_port: int | None = None

    @classmethod
    def from_env(cls, service: str, grpc_port: int, metrics_port: int) -> ServiceConfig:
        prefix = service.upper()
        index = env_int("ASAN_PROCESS_INDEX", -1)
        process_index = index if index >= 0 else None
        return cls(
            service=service,
            database_url=database_url(service),
            grpc_host=env_str(f"{prefix}_GRPC_HOST", "[::]"),
            grpc_port=env_int(f"{prefix}_GRPC_PORT", grpc_port),
            metrics_port=_metrics_port(env_int(f"{prefix}_METRICS_PORT", metrics_port), process_index),
            amqp_uri=env_str("AMQP_URI", "memory://"),
            grace_seconds=env_float("ASAN_SHUTDOWN_GRACE_SECONDS", 10.0),
            drain_seconds=env_float("ASAN_SHUTDOWN_DRAIN_SECONDS", 5.0),
            refuse_seconds=env_float("ASAN_SHUTDOWN_REFUSE_SECONDS", 0.5),
            max_connection_age_seconds=env_float("ASAN_GRPC_MAX_CONNECTION_AGE_SECONDS", 120.0),
            log_level=env_str("ASAN_LOG_LEVEL", "INFO"),
            access_log_per_second=access_log_per_second(),
            health_probe_seconds=env_float("ASAN_HEALTH_PROBE_SECONDS", 5.0),
            auth=AuthConfig.from_env(),
            retention=RetentionConfig.from_env(),
            process_index=process_index,
            tls=TlsConfig.from_env(),
            allowed_callers=env_names(f"{prefix}_ALLOWED_CALLERS", "gateway"),
            probe_port=env_int("ASAN_PROBE_PORT", -1) if os.environ.get("ASAN_PROBE_PORT") else None,
        )
