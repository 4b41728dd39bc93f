"""Traces across the suite (issue 13): the gateway, visa, payment and their event workers as
real processes exporting over OTLP to a receiver on loopback (tests.support.otlp), one e-visa
application and its payment followed as one trace; and with no collector named, nothing."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from gateway.contracts import Contracts
from services.runtime import tracing
from services.runtime.config import backend_variable
from tests.runtime.serversupport import run_cli
from tests.support.otlp import ReceivedSpan, otlp_receiver
from tests.support.ports import free_ports
from tests.support.workers import REPO_ROOT, wait_until
from tests.visa.builders import applicant, application

CARD = {"number": "4444333322221111", "expiryMonth": 12, "expiryYear": 2031, "cvc": "123"}
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP's Span.SpanKind numbers


class Process:
    """`python -m <argv>` from the repository root, its output (JSON logs) in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", *argv], cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def wait_for(self, text: str) -> None:
        def seen() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            return text in self.output()

        wait_until(seen, timeout=60, what=f"{self.name}: {text!r}\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Payment, visa, the gateway and both services' event workers (one process, memory://),
    all exporting to one OTLP receiver."""
    with otlp_receiver() as receiver, ExitStack() as running:
        payment_grpc, payment_metrics, visa_grpc, visa_metrics, http_port, gateway_metrics = free_ports(6)
        base = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ASAN_VAR_DIR": str(tmp_path / "var"),
            "PAYMENT_DATABASE_URL": f"sqlite:///{tmp_path / 'payment.sqlite3'}",
            "VISA_DATABASE_URL": f"sqlite:///{tmp_path / 'visa.sqlite3'}",
            "ASAN_SHUTDOWN_DRAIN_SECONDS": "0",
            "ASAN_SHUTDOWN_GRACE_SECONDS": "1",
            "AMQP_URI": "memory://",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        for variable in (
            "OTEL_SERVICE_NAME",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ):
            base.pop(variable, None)
        for command in (
            ("services.runtime.tokens", "keys"),
            ("services.payment", "migrate"),
            ("services.visa", "migrate"),
        ):
            done = run_cli(base, *command)
            assert done.returncode == 0, done.stderr
        processes: dict[str, Process] = {}

        def start(name: str, argv: list[str], env: dict[str, str], ready: str) -> None:
            process = Process(name, argv, {**base, **env}, tmp_path)
            running.callback(process.stop)
            process.wait_for(ready)
            processes[name] = process

        start(
            "payment",
            ["services.payment", "serve"],
            {
                "PAYMENT_GRPC_HOST": "127.0.0.1",
                "PAYMENT_GRPC_PORT": str(payment_grpc),
                "PAYMENT_METRICS_PORT": str(payment_metrics),
            },
            '"serving"',
        )
        start(
            "visa",
            ["services.visa", "serve"],
            {
                "VISA_GRPC_HOST": "127.0.0.1",
                "VISA_GRPC_PORT": str(visa_grpc),
                "VISA_METRICS_PORT": str(visa_metrics),
                "VISA_PAYMENT_TARGET": f"127.0.0.1:{payment_grpc}",
            },
            '"serving"',
        )
        closed = {backend_variable(package): "127.0.0.1:9" for package in Contracts.installed().packages}
        start(
            "gateway",
            ["gateway"],
            {
                **closed,
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(http_port),
                "GATEWAY_METRICS_PORT": str(gateway_metrics),
                "GATEWAY_BACKEND_PAYMENT": f"127.0.0.1:{payment_grpc}",
                "GATEWAY_BACKEND_VISA": f"127.0.0.1:{visa_grpc}",
            },
            "gateway ready",
        )
        # The workers export over HTTP (grpcio stays out of eventlet's processes), as with `make run`:
        # the servers' gRPC endpoint in the environment, the HTTP one beside it.
        start(
            "workers",
            [
                "services.runtime.workers",
                "services.payment.worker:event_services",
                "services.visa.worker:event_services",
            ],
            {"ASAN_OTLP_HTTP_ENDPOINT": receiver.http_endpoint},
            "event workers ready",
        )
        yield {
            "receiver": receiver,
            "processes": processes,
            "http": f"http://127.0.0.1:{http_port}",
            "gateway_metrics": f"http://127.0.0.1:{gateway_metrics}/metrics",
            "payment_metrics": f"http://127.0.0.1:{payment_metrics}/metrics",
        }


def _trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.trace_id == trace_id]


def _one(spans: list[ReceivedSpan], **wanted: Any) -> ReceivedSpan:
    found = [span for span in spans if all(getattr(span, key) == value for key, value in wanted.items())]
    assert len(found) == 1, f"{wanted}: {len(found)} spans among {[(s.service, s.name) for s in spans]}"
    return found[0]


def test_an_e_visa_application_and_its_payment_are_one_trace_across_processes_and_the_broker(
    suite: dict[str, Any],
) -> None:
    # A frontend's trace: both of the applicant's requests carry its traceparent.
    trace_id, frontend_span = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = {"traceparent": f"00-{trace_id}-{frontend_span}-01"}
    body = json_format.MessageToDict(application(applicant("C01X00T47")))
    with httpx.Client(base_url=suite["http"], timeout=30) as http:
        created = http.post(
            "/v1/applications", json=body, headers={"Idempotency-Key": str(uuid.uuid4()), **traceparent}
        )
        assert created.status_code == 200, created.text
        assert created.headers["x-trace-id"] == trace_id
        assert created.headers["x-request-id"]
        answer = created.json()
        paid = http.post(
            f"/v1/payments/{answer['application']['paymentId']}:confirm",
            json={"card": CARD, "confirmationSecret": answer["paymentConfirmationSecret"]},
            headers={"Idempotency-Key": str(uuid.uuid4()), **traceparent},
        )
        assert paid.status_code == 200, paid.text
        assert paid.json()["status"] == "PAYMENT_STATUS_SUCCEEDED"
        assert paid.headers["x-trace-id"] == trace_id

    store = suite["receiver"].store

    def consumed() -> bool:
        spans = _trace(store.spans(), trace_id)
        return any(s.name == "process PaymentSucceeded" for s in spans) and any(
            s.service == "event-workers" and s.name == "db.transaction" for s in spans
        )

    wait_until(consumed, timeout=30, what="visa's worker consumed PaymentSucceeded in the trace")
    spans = _trace(store.spans(), trace_id)
    by_id = {span.span_id: span for span in spans}

    # Every process took part; every span's parent is in the trace, but for the gateway's
    # server spans, whose parent is the frontend's.
    assert {span.service for span in spans} >= {"gateway", "visa", "payment", "event-workers"}
    entries = [span for span in spans if span.service == "gateway" and span.kind == SERVER]
    assert sorted(span.name for span in entries) == [
        "POST /v1/applications",
        "POST /v1/payments/{payment_id}:confirm",
    ]
    assert all(span.parent_span_id == frontend_span for span in entries)
    orphans = [(s.service, s.name) for s in spans if s not in entries and s.parent_span_id not in by_id]
    assert not orphans

    # gateway → visa → payment over gRPC, client and server spans chained.
    visa_server = _one(spans, service="visa", kind=SERVER, name="asan.visa.v1.VisaService/CreateApplication")
    assert by_id[visa_server.parent_span_id].service == "gateway"
    assert by_id[visa_server.parent_span_id].kind == CLIENT
    payment_server = _one(
        spans, service="payment", kind=SERVER, name="asan.payment.v1.PaymentService/CreatePayment"
    )
    visa_client = by_id[payment_server.parent_span_id]
    assert (visa_client.service, visa_client.kind, visa_client.parent_span_id) == (
        "visa",
        CLIENT,
        visa_server.span_id,
    )

    # The database, in both services, and the acquirer's charge.
    for service in ("visa", "payment"):
        assert any(s.service == service and s.name == "db.transaction" for s in spans)
    confirm = _one(
        spans, service="payment", kind=SERVER, name="asan.payment.v1.PaymentService/ConfirmPayment"
    )
    charge = _one(spans, name="acquirer charge")
    assert (charge.kind, charge.parent_span_id) == (CLIENT, confirm.span_id)

    # The event: created in ConfirmPayment's transaction, published by the relay, consumed by
    # visa's worker as a child of (and linked to) its creation context.
    published = _one(spans, name="send PaymentSucceeded", kind=PRODUCER)
    processed = _one(spans, name="process PaymentSucceeded", kind=CONSUMER)
    creation = by_id[processed.parent_span_id]
    assert (creation.service, creation.name) == ("payment", "db.transaction")
    assert by_id[creation.parent_span_id] == confirm
    assert published.parent_span_id == creation.span_id
    assert processed.links == ((trace_id, creation.span_id),)
    assert processed.attributes["messaging.consumer.group.name"] == "visa_fee_consumer"
    assert any(s.parent_span_id == processed.span_id and s.name == "db.transaction" for s in spans)

    # The logs of those calls carry the trace id, in every process.
    processes = suite["processes"]
    for name in ("gateway", "visa", "payment", "workers"):
        lines = [line for line in processes[name].log_lines() if line.get("trace_id") == trace_id]
        assert lines, f"no log line of {name} carries the trace id"
    assert any(
        line["message"] == "grpc call"
        for line in processes["payment"].log_lines()
        if line.get("trace_id") == trace_id
    )

    # A latency histogram's exemplar points to the trace (OpenMetrics, when asked for it).
    for url, metric in (
        (suite["gateway_metrics"], "http_request_duration_seconds_bucket"),
        (suite["payment_metrics"], "grpc_server_handling_seconds_bucket"),
    ):
        scraped = httpx.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert scraped.headers["content-type"].startswith("application/openmetrics-text")
        assert re.search(rf'^{metric}{{.*}} \S+ # {{trace_id="{trace_id}"}}', scraped.text, re.MULTILINE), (
            metric
        )


def test_without_a_collector_nothing_is_traced() -> None:
    assert not tracing.tracing_requested() or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert tracing.SETUP.tracer is None
    assert tracing.current_trace_id() is None
    assert tracing.exemplar() is None
    with tracing.internal_span("db.transaction") as span:
        assert span is None
