"""The log writer of the servers: every queued line is written, in order, several lines to a
write under load, what is queued when it stops included; a line that cannot be formatted loses
only itself. The access log: every failed or slow call logged, successful ones up to a rate, and
the ones left out counted on the next line."""

from __future__ import annotations

import io
import json
import logging
import queue

import pytest

from services.runtime.logs import AccessLog, BatchWriter, json_handler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def writer() -> tuple[BatchWriter, queue.SimpleQueue[logging.LogRecord | None], CountingStream]:
    stream = CountingStream()
    handler = json_handler("payment")
    handler.setStream(stream)
    records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
    return BatchWriter(records, handler, interval=0.05), records, stream


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("asan.grpc", logging.INFO, __file__, 1, message, args, None)


def test_every_line_is_written_in_order_and_a_burst_in_few_writes() -> None:
    log_writer, records, stream = writer()
    log_writer.start()
    for number in range(500):
        records.put(record("grpc call %d", number))
    log_writer.stop()

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [f"grpc call {number}" for number in range(500)]
    assert {(line["level"], line["logger"]) for line in lines} == {("INFO", "asan.grpc")}
    assert stream.writes < 10


def test_what_is_queued_when_it_stops_is_written() -> None:
    log_writer, records, stream = writer()
    for number in range(3):  # queued before the thread even runs
        records.put(record("early %d", number))
    log_writer.start()
    log_writer.stop()

    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
        "early 0",
        "early 1",
        "early 2",
    ]


def test_a_line_that_cannot_be_formatted_loses_only_itself() -> None:
    log_writer, records, stream = writer()
    logging.raiseExceptions = False  # as in production: handleError reports nothing on stderr
    try:
        log_writer.start()
        records.put(record("before"))
        records.put(record("broken %d", "not a number"))
        records.put(record("after"))
        log_writer.stop()
    finally:
        logging.raiseExceptions = True

    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["before", "after"]


# --- The access log --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_past_its_rate_a_successful_call_is_counted_and_the_next_line_says_how_many(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    access = AccessLog(logging.getLogger("asan.test.access"), "grpc call", per_second=2, clock=clock)

    def call(succeeded: bool, seconds: float = 0.01) -> None:
        if access.takes(succeeded, seconds):
            access.write({"succeeded": succeeded, "seconds": seconds})

    with caplog.at_level(logging.INFO, logger="asan.test.access"):
        for _ in range(5):
            call(True)  # two logged, three counted
        call(False)  # a failure: always logged, with the three before it
        call(True, seconds=2.5)  # slow: always logged
        call(True)  # still past the rate in this second
        clock.now += 1
        call(True)  # a new second

    lines = [
        (record.__dict__["succeeded"], record.__dict__["seconds"], record.__dict__.get("unlogged_calls", 0))
        for record in caplog.records
    ]
    assert lines == [(True, 0.01, 0), (True, 0.01, 0), (False, 0.01, 3), (True, 2.5, 0), (True, 0.01, 1)]


def test_with_no_rate_every_call_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    access = AccessLog(logging.getLogger("asan.test.access"), "grpc call", per_second=0)
    with caplog.at_level(logging.INFO, logger="asan.test.access"):
        for number in range(300):
            if access.takes(True, 0.001):
                access.write({"number": number})
    assert [record.__dict__["number"] for record in caplog.records] == list(range(300))
