"""Process logging: JSON lines with trace and span ids, or readable text on a terminal.

TASKFLOW_LOG_FORMAT (json|text) and TASKFLOW_LOG_LEVEL override the defaults;
TASKFLOW_LOG_LEVELS sets single loggers, e.g. `pipelines.audit=DEBUG,tortoise=WARNING`.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from opentelemetry import trace

_HANDLER_NAME = "taskflow-observability"

# Attributes every LogRecord has; anything else came in through `extra=` and is logged.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "service", "trace_id", "span_id"}
)


class TraceContextFilter(logging.Filter):
    """Stamp each record with the service name and the ids of the span active when logging.

    It runs in the emitting thread/task, where the span is current, not at format time.
    """

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service_name
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        else:
            record.trace_id = None
            record.span_id = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, service, logger, message, ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            doc["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc_info"] = record.exc_text
        if record.stack_info:
            doc["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal; the trace id (short) when a span is active."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(service)s %(name)s: %(message)s%(trace)s")

    def format(self, record: logging.LogRecord) -> str:
        trace_id = getattr(record, "trace_id", None)
        record.trace = f" [trace={trace_id}]" if trace_id else ""
        return super().format(record)


def _wants_json(stream: IO[str]) -> bool:
    chosen = os.environ.get("TASKFLOW_LOG_FORMAT", "").strip().lower()
    if chosen in ("json", "text"):
        return chosen == "json"
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


def setup_logging(service_name: str, level: str = "INFO", *, stream: IO[str] | None = None) -> None:
    """Route the root logger to stderr (or `stream`) in the chosen format; idempotent."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(TraceContextFilter(service_name))
    handler.setFormatter(JsonFormatter() if _wants_json(out) else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(os.environ.get("TASKFLOW_LOG_LEVEL", level).strip().upper())
    for name, logger_level in logger_levels(os.environ.get("TASKFLOW_LOG_LEVELS", "")).items():
        logging.getLogger(name).setLevel(logger_level)


def logger_levels(spec: str) -> dict[str, str]:
    """`a.b=DEBUG,c=WARNING` as {logger: LEVEL}; malformed parts are ignored."""
    levels: dict[str, str] = {}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() and value.strip().upper() in logging.getLevelNamesMapping():
            levels[name.strip()] = value.strip().upper()
    return levels
