"""The one list of services: every service folder is in it, and `make run` is derived from it."""

from __future__ import annotations

import shlex
from pathlib import Path

from gateway.contracts import Contracts
from services import suite
from services.runtime.config import backend_variable
from services.runtime.mail import DEFAULT_SMTP_URL

ROOT = Path(__file__).resolve().parents[2]


def _procfile() -> dict[str, list[str]]:
    lines = [line for line in suite.procfile().splitlines() if line and not line.startswith("#")]
    return {name: shlex.split(command) for name, _, command in (line.partition(": ") for line in lines)}


def test_every_folder_with_a_service_definition_is_a_service() -> None:
    folders = {path.parent.name for path in (ROOT / "services").glob("*/service.py")}
    assert set(suite.service_names()) == folders
    assert {"payment", "visa"} <= folders


def test_ports_are_unique_across_the_suite() -> None:
    ports = [port for d in suite.definitions() for port in (d.grpc_port, d.metrics_port)]
    assert len(ports) == len(set(ports))
    assert suite.LOCAL_EVENTS_METRICS_PORT not in ports and suite.GATEWAY_PORT not in ports


def test_make_run_starts_a_server_per_service_one_events_process_and_the_gateway() -> None:
    processes = _procfile()
    for name in suite.service_names():
        assert processes[name][-4:] == ["python", "-m", f"services.{name}", "serve"]
    events = processes["events"]
    for name in suite.service_names():
        assert (f"services.{name}.worker:event_services" in events) == suite.has_worker(name)
    assert "VISA_SANDBOX_DECISIONS=true" in events
    assert processes["gateway"][-3:] == ["python", "-m", "gateway"]
    # The mail drop receives what the workers mail, on the port of ASAN_SMTP_URL's default.
    assert processes["mail"] == ["python", "tools/maildrop.py", "--port", "8025"]
    assert f"smtp://127.0.0.1:{suite.LOCAL_MAIL_PORT}" == DEFAULT_SMTP_URL


def test_make_run_speaks_plaintext_grpc_because_it_says_so() -> None:
    """TLS is the default (services.runtime.tls); one machine turns it off explicitly."""
    processes = _procfile()
    for name in [*suite.service_names(), "events", "gateway"]:
        command = processes[name]
        assert command[0] == "env" and "ASAN_TLS=off" in command, name


def test_the_local_gateway_is_told_where_every_contract_package_is_served() -> None:
    gateway = _procfile()["gateway"]
    settings = dict(word.split("=", 1) for word in gateway if "=" in word)
    ports = {d.name: d.grpc_port for d in suite.definitions()}
    for package in Contracts.installed().packages:
        domain = package.split(".")[1]
        assert settings[backend_variable(package)] == f"127.0.0.1:{ports[domain]}"


def test_local_finance_reads_payment_and_agro_from_their_local_servers() -> None:
    finance = _procfile()["finance"]
    ports = {d.name: d.grpc_port for d in suite.definitions()}
    assert finance[0] == "env"
    assert (
        f"FINANCE_PROVIDER_TARGETS=payment=127.0.0.1:{ports['payment']},agro=127.0.0.1:{ports['agro']}"
        in finance
    )
    assert _procfile()["payment"] == ["env", "ASAN_TLS=off", "python", "-m", "services.payment", "serve"]


def test_the_makefile_lists_services_from_their_folders() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "SERVICES := $(patsubst services/%/service.py,%,$(wildcard services/*/service.py))" in makefile
    assert "services.suite procfile" in makefile
