"""Structured JSON logs for Cloud Logging: one line per record on stdout."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Protocol

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


class LogStream(Protocol):
    """Where log lines go: a text stream, or anything that writes and flushes text like one (the progress bar)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with `severity`, `message` and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(stream: LogStream | None = None, level: str = "info") -> None:
    """Send the package's logs at `level` and above as JSON lines to `stream` (stdout by default).

    Safe to call twice.
    """
    logger = logging.getLogger("image_pipeline")
    logger.setLevel(level.upper())
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)


def log(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log `message` with structured `fields` beside it."""
    logger.log(level, message, extra={"fields": fields})
