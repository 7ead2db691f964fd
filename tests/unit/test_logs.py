from __future__ import annotations

import json
import logging

from hookstream.logs import ClientConnectionNoise, JsonFormatter


def test_json_lines_keep_extra_fields_and_exceptions() -> None:
    logger = logging.getLogger("test.logs")
    record = logger.makeRecord(
        "test.logs", logging.WARNING, __file__, 1, "topic %s", ("t1",), None, extra={"topic": "t1", "partitions": 3}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning"
    assert entry["msg"] == "topic t1"
    assert (entry["topic"], entry["partitions"]) == ("t1", 3)

    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logger.makeRecord("test.logs", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exc"]


def test_a_broker_away_is_one_warning_per_message_per_window_not_an_error_a_second() -> None:
    now = [0.0]
    noise = ClientConnectionNoise(window_s=60, clock=lambda: now[0])

    def record(name: str, level: int, message: str) -> logging.LogRecord:
        return logging.getLogger(name).makeRecord(name, level, __file__, 1, message, (), None)

    refused = (
        "FAIL [producer-3] 127.0.0.1:{port}/bootstrap: Connect to ipv4#127.0.0.1:{port} failed: Connection refused"
    )
    first = record("hookstream.kafka.producer", logging.ERROR, refused.format(port=57883))
    assert noise.filter(first)
    assert first.levelname == "WARNING"
    now[0] = 1.0
    assert not noise.filter(record("hookstream.kafka.producer", logging.ERROR, refused.format(port=57883)))
    assert not noise.filter(record("hookstream.kafka.producer", logging.ERROR, refused.format(port=40001)))
    assert noise.filter(record("aiokafka", logging.ERROR, "Unable connect to node with id 1: [Errno 111]"))
    now[0] = 61.0
    assert noise.filter(record("hookstream.kafka.producer", logging.ERROR, refused.format(port=57883)))
    other = record("aiokafka.consumer", logging.ERROR, "Unexpected error in the fetcher: KeyError('x')")
    assert noise.filter(other)
    assert other.levelname == "ERROR"  # not a connection failure: kept as it was
    assert noise.filter(record("hookstream.consumer", logging.ERROR, "Connection refused"))  # ours: untouched
