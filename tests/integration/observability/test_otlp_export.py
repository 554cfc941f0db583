"""A real process configured only by OTEL_* variables exports over OTLP (HTTP and gRPC),
samples as told, and logs the trace ids of the spans it exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.observability.otlp_receiver import Receiver

pytestmark = pytest.mark.integration

SERVICE = "taskflow-export-probe"
PROGRAM = f"""
import logging
from opentelemetry import trace
from observability.logs import setup_logging
from observability.tracing import setup_tracing
setup_tracing({SERVICE!r})
setup_tracing({SERVICE!r})  # idempotent: still one exporter, no duplicate spans
setup_logging({SERVICE!r})
tracer = trace.get_tracer("probe")
with tracer.start_as_current_span("work"):
    with tracer.start_as_current_span("child"):
        logging.getLogger("probe").info("inside")
logging.getLogger("probe").info("outside")
"""  # no explicit flush: the provider must flush its batch at exit by itself


def _run(env: dict[str, str]) -> list[dict[str, object]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base.pop("TASKFLOW_LOG_FORMAT", None)
    # Export is under test, not the shipped 1-in-10 sampling: record every trace.
    base["OTEL_TRACES_SAMPLER_ARG"] = "1.0"
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # stderr is a pipe, not a terminal: JSON lines by default.
    return [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]


def _check_exported(receiver: Receiver, logs: list[dict[str, object]]) -> None:
    spans = receiver.wait_for(lambda s: len(s) >= 2)
    assert len(spans) == 2  # the process has exited: nothing more can come
    work = next(s for s in spans if s.name == "work")
    child = next(s for s in spans if s.name == "child")
    assert {s.service for s in spans} == {SERVICE}
    assert child.parent_span_id == work.span_id and child.trace_id == work.trace_id
    inside, outside = logs
    assert inside["message"] == "inside"
    assert inside["trace_id"] == child.trace_id and inside["span_id"] == child.span_id
    assert inside["service"] == SERVICE
    assert outside["trace_id"] is None


def test_otlp_http_is_the_default(otlp_http: tuple[Receiver, str]) -> None:
    receiver, url = otlp_http
    logs = _run({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
    _check_exported(receiver, logs)


def test_otlp_grpc(otlp_grpc: tuple[Receiver, str]) -> None:
    receiver, url = otlp_grpc
    logs = _run({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    _check_exported(receiver, logs)


@pytest.mark.parametrize(
    "extra",
    [{"OTEL_TRACES_SAMPLER_ARG": "0"}, {"OTEL_TRACES_EXPORTER": "none"}],
    ids=["ratio-0", "exporter-none"],
)
def test_nothing_exported_but_trace_ids_still_logged(
    otlp_http: tuple[Receiver, str], extra: dict[str, str]
) -> None:
    receiver, url = otlp_http
    logs = _run({"OTEL_EXPORTER_OTLP_ENDPOINT": url, **extra})
    # The process has exited, so its exit-time flush is over: nothing was sent.
    assert receiver.snapshot() == []
    assert receiver.requests == 0
    inside = logs[0]
    assert isinstance(inside["trace_id"], str) and len(inside["trace_id"]) == 32
