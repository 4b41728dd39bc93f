"""The suite as one list: every folder `services/<name>/` with a `service.py` is a service.

What would otherwise be a hand-kept table per tool is derived from here, from each service's
own `ServiceDefinition`: the processes of `make run` (its Procfile and the endpoints it
prints), the gateway's backends on one machine, the local Prometheus scrape jobs, the
dashboards. Adding a service folder is the registration.

    python -m services.suite names       # payment visa ...
    python -m services.suite procfile    # the Procfile of `make run`
    python -m services.suite endpoints   # what `make run` prints
    python -m services.suite build-args payment   # what `make images` passes to services/Dockerfile

Only tools and tests import this module: it imports every service, which no service and
not the gateway may do (the import contracts in pyproject.toml).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
from dataclasses import dataclass
from pathlib import Path

from services.runtime.config import backend_variable
from services.runtime.server import ServiceDefinition

SERVICES_DIR = Path(__file__).resolve().parent
LOCAL_HOST = "127.0.0.1"
# `make run` hosts every service's event workers in one process (memory:// carries events
# only within a process); its metrics answer here.
LOCAL_EVENTS_METRICS_PORT = 9200
GATEWAY_PORT = 8080
# The gateway's /metrics, on a port of its own (GATEWAY_METRICS_PORT's default).
GATEWAY_METRICS_PORT = 9190
# What every process of `make run` is given: plaintext gRPC on one machine (services.runtime.tls).
LOCAL_ENV = {"ASAN_TLS": "off"}
# The local mail drop (tools/maildrop.py), where ASAN_SMTP_URL points by default.
LOCAL_MAIL_PORT = 8025


def service_names() -> list[str]:
    """The services' folder names, in the order of their gRPC ports (the README's table)."""
    return [definition.name for definition in definitions()]


def definitions() -> list[ServiceDefinition]:
    found = []
    for path in sorted(SERVICES_DIR.glob("*/service.py")):
        module = importlib.import_module(f"services.{path.parent.name}.service")
        definition: ServiceDefinition = module.definition
        if definition.name != path.parent.name:
            raise ValueError(f"{path}: the definition is named {definition.name!r}, its folder differently")
        found.append(definition)
    return sorted(found, key=lambda definition: definition.grpc_port)


def has_worker(name: str) -> bool:
    return (SERVICES_DIR / name / "worker.py").exists()


def worker_target(name: str) -> str:
    """What `python -m services.runtime.workers` loads for the service's event worker."""
    return f"services.{name}.worker:event_services"


def proto_packages(definition: ServiceDefinition) -> list[str]:
    """ "asan.payment.v1.PaymentService" -> "asan.payment.v1": the packages the gateway routes."""
    return sorted({service.rpartition(".")[0] for service in definition.grpc_services})


@dataclass(frozen=True)
class Process:
    name: str
    command: list[str]
    env: dict[str, str]

    def procfile_line(self) -> str:
        env = [f"{key}={value}" for key, value in sorted(self.env.items())]
        words = ["env", *env, *self.command] if env else self.command
        return f"{self.name}: {shlex.join(words)}"


def local_processes() -> list[Process]:
    """Every process of the suite on one machine: a server per service, one process for all
    event workers, the gateway in front, and the mail drop that receives the notices mailed
    to e-mail addresses (files in var/mail/)."""
    services = definitions()
    addresses = {d.name: f"{LOCAL_HOST}:{d.grpc_port}" for d in services}
    processes = [
        Process(
            d.name,
            ["python", "-m", f"services.{d.name}", "serve"],
            {**LOCAL_ENV, **{key: value.format_map(addresses) for key, value in d.local_server_env.items()}},
        )
        for d in services
    ]
    with_workers = [d for d in services if has_worker(d.name)]
    if with_workers:
        events_env = {**LOCAL_ENV, "ASAN_WORKER_METRICS_PORT": str(LOCAL_EVENTS_METRICS_PORT)}
        for definition in with_workers:
            events_env.update(definition.local_worker_env)
        targets = [worker_target(d.name) for d in with_workers]
        command = ["python", "-m", "services.runtime.workers", *targets]
        processes.append(Process("events", command, events_env))
    backends = {
        backend_variable(package): f"{LOCAL_HOST}:{definition.grpc_port}"
        for definition in services
        for package in proto_packages(definition)
    }
    processes.append(Process("gateway", ["python", "-m", "gateway"], {**LOCAL_ENV, **backends}))
    # A development tool, not in the images: aiosmtpd is a development dependency.
    mail = ["python", "tools/maildrop.py", "--port", str(LOCAL_MAIL_PORT)]
    processes.append(Process("mail", mail, {}))
    return processes


def procfile() -> str:
    lines = [
        "# Written by `python -m services.suite procfile` for `make run`: do not edit.",
        *(process.procfile_line() for process in local_processes()),
    ]
    return "\n".join(lines) + "\n"


def endpoints() -> str:
    lines = []
    for definition in definitions():
        lines.append(
            f"  {definition.name:<9}gRPC {LOCAL_HOST}:{definition.grpc_port}   "
            f"metrics http://{LOCAL_HOST}:{definition.metrics_port}/metrics"
        )
    lines.append(
        f"  {'events':<9}all event workers, one process, "
        f"metrics http://{LOCAL_HOST}:{LOCAL_EVENTS_METRICS_PORT}/metrics"
    )
    lines.append(
        f"  {'gateway':<9}HTTP http://{LOCAL_HOST}:{GATEWAY_PORT}   "
        f"API page http://{LOCAL_HOST}:{GATEWAY_PORT}/docs   "
        f"metrics http://{LOCAL_HOST}:{GATEWAY_METRICS_PORT}/metrics"
    )
    lines.append(f"  {'mail':<9}SMTP {LOCAL_HOST}:{LOCAL_MAIL_PORT}   mails to e-mail addresses in var/mail/")
    return "\n".join(lines)


def image_build_args(name: str) -> dict[str, str]:
    """The build arguments of the service's image (services/Dockerfile): its folder and the
    ports it exposes."""
    definition = next((d for d in definitions() if d.name == name), None)
    if definition is None:
        raise ValueError(f"no service {name!r}: the services are {', '.join(service_names())}")
    return {
        "SERVICE": definition.name,
        "GRPC_PORT": str(definition.grpc_port),
        "METRICS_PORT": str(definition.metrics_port),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["names", "procfile", "endpoints", "build-args"])
    parser.add_argument("service", nargs="?", help="build-args: the service whose image is built")
    args = parser.parse_args(argv)
    if args.what == "build-args":
        if args.service not in service_names():
            parser.error(f"build-args needs a service's name: {', '.join(service_names())}")
        arguments = image_build_args(args.service)
        print(shlex.join(f"--build-arg={key}={value}" for key, value in arguments.items()))
        return
    if args.what == "names":
        print(" ".join(service_names()))
    elif args.what == "procfile":
        print(procfile(), end="")
    else:
        print(endpoints())


if __name__ == "__main__":
    main()
