"""The log writer of the servers: every queued line is written, in order, several lines to a
write under load, what is queued when it stops included; a line that cannot be formatted loses
only itself."""

from __future__ import annotations

import io
import json
import logging
import queue

from services.runtime.logs import BatchWriter, json_handler


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
