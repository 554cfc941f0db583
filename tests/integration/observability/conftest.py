"""Fixtures of the observability tier: real OTLP receivers (HTTP and gRPC), in-memory spans."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability.tracing import setup_tracing
from tests.integration.observability.otlp_receiver import Receiver, serve_grpc, serve_http


@pytest.fixture
def otlp_http() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with serve_http(receiver) as url:
        yield receiver, url


@pytest.fixture
def otlp_grpc() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with serve_grpc(receiver) as url:
        yield receiver, url


@pytest.fixture(scope="session")
def _session_spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("taskflow-observability-it", exporter=exporter)
    return exporter


@pytest.fixture
def spans(_session_spans: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    _session_spans.clear()
    yield _session_spans
    _session_spans.clear()
