from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace

from observability.logs import setup_logging


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_active_trace(
    restore_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKFLOW_LOG_FORMAT", raising=False)
    monkeypatch.delenv("TASKFLOW_LOG_LEVEL", raising=False)
    out = io.StringIO()
    setup_logging("taskflow-task-service", stream=out)
    log = logging.getLogger("task_api.test")
    with trace.get_tracer("t").start_as_current_span("req") as span:
        log.info("created %s", "t1", extra={"task_id": "t1"})
    log.debug("hidden at INFO")
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second = _lines(out)
    ctx = span.get_span_context()
    assert first["trace_id"] == format(ctx.trace_id, "032x")
    assert first["span_id"] == format(ctx.span_id, "016x")
    assert first["service"] == "taskflow-task-service"
    assert first["logger"] == "task_api.test"
    assert first["message"] == "created t1"
    assert first["level"] == "INFO"
    assert first["task_id"] == "t1"
    assert str(first["timestamp"]).endswith("+00:00")
    assert second["trace_id"] is None and second["level"] == "ERROR"
    assert second["exc_type"] == "ValueError"
    assert "ValueError: bad" in str(second["exc_info"])


def test_text_on_a_terminal_and_overrides(
    restore_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKFLOW_LOG_FORMAT", raising=False)
    monkeypatch.setenv("TASKFLOW_LOG_LEVEL", "debug")
    tty = _Tty()
    setup_logging("svc", stream=tty)
    with trace.get_tracer("t").start_as_current_span("req") as span:
        logging.getLogger("x").debug("hello")
    text = tty.getvalue()
    assert "DEBUG" in text and "svc x: hello" in text
    assert f"trace={format(span.get_span_context().trace_id, '032x')}" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)

    monkeypatch.setenv("TASKFLOW_LOG_FORMAT", "json")
    tty2 = _Tty()
    setup_logging("svc", stream=tty2)
    logging.getLogger("x").warning("as json")
    assert _lines(tty2)[0]["message"] == "as json"


def test_setup_twice_keeps_one_handler(restore_root: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFLOW_LOG_FORMAT", "json")
    monkeypatch.delenv("TASKFLOW_LOG_LEVEL", raising=False)
    first, second = io.StringIO(), io.StringIO()
    setup_logging("svc", stream=first)
    setup_logging("svc", stream=second)
    logging.getLogger("x").warning("once")
    assert first.getvalue() == ""
    assert len(_lines(second)) == 1
