"""Structured JSON logs, one object per line, for runtime and operator alike.

Every client library logs through Python's logging (librdkafka's clients are given a
logger), so every line is JSON. Repeated warnings and errors are rate-limited: a broker
that is down makes librdkafka report the same failure dozens of times a second, which
would bury everything else.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class RepeatFilter(logging.Filter):
    """Lets through at most ``burst`` warnings or errors of one kind per ``window``
    seconds; the next one let through says how many were held back. A kind is the logger,
    the level and the message template (and, for librdkafka, its facility)."""

    def __init__(self, burst: int = 3, window: float = 10.0) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._seen: dict[tuple[object, ...], list[float | int]] = {}  # started, passed, held
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        first = record.args[0] if isinstance(record.args, tuple) and record.args else None
        key = (record.name, record.levelno, record.msg, first if isinstance(first, str) else None)
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or now - seen[0] >= self.window:
                held = int(seen[2]) if seen is not None else 0
                self._seen[key] = [now, 1, 0]
                if held:
                    record.msg = f"{record.msg} ({held} similar messages held back)"
                if len(self._seen) > 1000:  # kinds are few; bound it anyway
                    self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
                return True
            if seen[1] < self.burst:
                seen[1] += 1
                return True
            seen[2] += 1
            return False


class PlainFormatter(logging.Formatter):
    """Lines for people (``--plain-logs``); those of one of a pod's several runtime
    processes say which (``[process 1]``), as the JSON lines' ``process_index`` does."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(process_tag)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        index = getattr(record, "process_index", None)
        record.process_tag = f" [process {index}]" if index is not None else ""
        return super().format(record)


def setup_logging(level: str = "info", json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter())
    handler.setFormatter(JsonFormatter() if json else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # librdkafka's own logger is chatty at info.
    logging.getLogger("sluice.source").setLevel(max(root.level, logging.INFO))


class ProcessIndexFilter(logging.Filter):
    """Marks each line with the runtime process it comes from, when a pod runs several
    (scaling.processesPerReplica): their logs share the pod's stream."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.process_index = self.index
        return True


def mark_process(index: int) -> None:
    """Every line this process logs from now on says ``process_index``."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(ProcessIndexFilter(index))
