from __future__ import annotations

import json
import logging

from hookstream.logs import JsonFormatter


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
