"""One in-memory span exporter for the session, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability.tracing import setup_tracing

SERVICE = "taskflow-unit-test"


@pytest.fixture(scope="session", autouse=True)
def _session_spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing(SERVICE, exporter=exporter)
    return exporter


@pytest.fixture
def spans(_session_spans: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    _session_spans.clear()
    yield _session_spans
    _session_spans.clear()
