"""Structured JSON logs, one line per event, in the shape Cloud Logging parses.

`severity` and `message` are Cloud Logging's special fields; `run_id` and `function` come
from the current run's context, so every line of a run can be found by its id.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

from common.core.redaction import install_log_redaction, redact

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("aircast_log", default={})  # noqa: B039


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "logger": record.name,
            **_context.get(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        # A secret never reaches a log line, whichever field or stack trace carries it.
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(level: str = "INFO", stream: Any = None, *more: Any) -> None:
    """Route the `aircast` loggers to one JSON line per event on stderr (idempotent).

    Given streams, they replace wherever the lines went before: the CLI sends them to a file
    under the home (and stderr too with -v), so a person's terminal keeps its own lines.
    Secrets are redacted from every record of the process (common.core.redaction)."""
    install_log_redaction()
    logger = logging.getLogger("aircast")
    logger.setLevel(level)
    logger.propagate = False
    ours = [h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)]
    if stream is None and ours:
        return
    for h in ours:
        logger.removeHandler(h)
    for target in (stream or sys.stderr, *more):
        handler = logging.StreamHandler(target)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"aircast.{name}")


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (run_id, function, ...) to every line logged inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with structured fields."""
    logger.log(level, message, extra={"fields": fields})
