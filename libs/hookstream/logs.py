"""Structured JSON logging: one object per line, extra fields kept."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hookstream import tracing
from hookstream.settings import LogSettings

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is kept.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        ids = tracing.current_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ClientConnectionNoise(logging.Filter):
    """The Kafka clients log every failed connection attempt as an error, once a second per client while
    a broker restarts (librdkafka's ``FAIL``, aiokafka's "Unable connect to node"). A broker away is a
    warning (the services ride it out; ``hookstream.outage`` says so once), and one line per message
    per ``window_s`` says it as well as a hundred: repeats are dropped, errors of other kinds kept."""

    LOGGERS = ("aiokafka", "hookstream.kafka.producer")
    PATTERNS = re.compile(
        r"Connection refused|Unable connect|Unable to update metadata|NodeNotReady|Connect to .* failed"
        r"|Failed fetch messages|Group Coordinator Request failed|Disconnected|all brokers down"
        r"|timed out|Coordinator load in progress|Broker transport failure",
        re.IGNORECASE,
    )

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.LOGGERS):
            return True
        message = record.getMessage()
        if not self.PATTERNS.search(message):
            return True
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        shape = (record.name, re.sub(r"\d+", "#", message))  # the same failure on another port or after N ms
        now = self.clock()
        last = self._last.get(shape)
        if last is not None and now - last < self.window_s:
            return False
        if len(self._last) > 1_000:
            self._last.clear()
        self._last[shape] = now
        return True


def configure_logging(settings: LogSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ClientConnectionNoise())
    if settings.json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
