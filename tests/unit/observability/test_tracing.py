from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    set_span_in_context,
)

from observability import sampling, tracing
from observability.otlp import HttpSpanExporter
from observability.tracing import exporter_from_env, get_tracer, setup_tracing
from tests.unit.observability.conftest import SERVICE

_OTEL_VARS = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_endpoint_means_no_exporter(clean_env: pytest.MonkeyPatch) -> None:
    assert exporter_from_env() is None


def test_exporter_none_wins_over_an_endpoint(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    clean_env.setenv("OTEL_TRACES_EXPORTER", "none")
    assert exporter_from_env() is None


def test_http_is_the_default_protocol(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    exporter = exporter_from_env()
    # The official exporter with our request encoder (observability.otlp).
    assert isinstance(exporter, HttpSpanExporter)
    # The exporter itself appends the signal path to the generic endpoint.
    assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_traces_endpoint_is_used_as_given(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9999/custom")
    exporter = exporter_from_env()
    assert isinstance(exporter, HttpSpanExporter)
    assert exporter._endpoint == "http://127.0.0.1:9999/custom"
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_grpc_protocol(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    clean_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    exporter = exporter_from_env()
    assert isinstance(exporter, GrpcExporter)
    exporter.shutdown()


def test_console_exporter(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_TRACES_EXPORTER", "console")
    assert isinstance(exporter_from_env(), ConsoleSpanExporter)


def _parent(sampled: bool) -> object:
    ctx = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
    )
    return set_span_in_context(NonRecordingSpan(ctx))


def test_sampler_is_parent_based_ratio(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    sampler = sampling.sampler_from_env()
    assert "ParentBased" in sampler.get_description()
    # Ratio 0 drops new roots but follows a sampled parent: traces are never cut in half.
    root = sampler.should_sample(None, 0x0AF7651916CD43DD8448EB211C80319C, "root")
    assert root.decision is Decision.DROP
    child = sampler.should_sample(_parent(True), 1, "child")  # type: ignore[arg-type]
    assert child.decision is Decision.RECORD_AND_SAMPLE
    unsampled = sampler.should_sample(_parent(False), 1, "child")  # type: ignore[arg-type]
    assert unsampled.decision is Decision.DROP


def test_sampler_ratio_is_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    assert "0.25" in sampling.sampler_from_env().get_description()
    clean_env.setenv("OTEL_TRACES_SAMPLER_ARG", "not-a-number")
    assert "0.1" in sampling.sampler_from_env().get_description()


def test_shipped_default_is_parent_based_one_in_ten(clean_env: pytest.MonkeyPatch) -> None:
    description = sampling.sampler_from_env().get_description()
    assert "ParentBased" in description and "TraceIdRatioBased{0.1}" in description


def test_named_sampler_is_honoured(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_TRACES_SAMPLER", "always_off")
    assert sampling.sampler_from_env().get_description() == "AlwaysOffSampler"


def test_setup_is_idempotent_and_keeps_service_names(spans: InMemorySpanExporter) -> None:
    first = setup_tracing(SERVICE)
    assert setup_tracing(SERVICE) is first
    # Attaching the same exporter twice must not duplicate spans.
    setup_tracing(SERVICE, exporter=spans)
    other = setup_tracing("taskflow-other-service")
    assert other is not first
    with get_tracer("t", "taskflow-other-service").start_as_current_span("in-other"):
        pass
    with trace.get_tracer("t").start_as_current_span("global"):
        pass
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["in-other", "global"]
    services = [s.resource.attributes["service.name"] for s in finished]
    assert services[0] == "taskflow-other-service"
    assert tracing.force_flush()


def test_spans_have_real_ids_without_an_exporter_configured(spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("t").start_as_current_span("x") as span:
        assert span.get_span_context().is_valid
        assert span.is_recording()


def test_a_client_span_never_starts_a_trace(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_TRACES_SAMPLER_ARG", "1.0")
    sampler = sampling.sampler_from_env()
    # A query with no traced operation around it (relay polling, readiness probe): dropped.
    tid = 0x0AF7651916CD43DD8448EB211C80319C
    orphan = sampler.should_sample(None, tid, "SELECT", SpanKind.CLIENT)
    assert orphan.decision is Decision.DROP
    server = sampler.should_sample(None, tid, "GET", SpanKind.SERVER)
    assert server.decision is Decision.RECORD_AND_SAMPLE
    # Inside a sampled operation the same query is kept.
    child = sampler.should_sample(_parent(True), 1, "SELECT", SpanKind.CLIENT)  # type: ignore[arg-type]
    assert child.decision is Decision.RECORD_AND_SAMPLE


def test_transaction_brackets_are_not_traced(clean_env: pytest.MonkeyPatch) -> None:
    sampler = sampling.sampler_from_env()
    for name in ("BEGIN;", "COMMIT;"):
        result = sampler.should_sample(_parent(True), 1, name, SpanKind.CLIENT)  # type: ignore[arg-type]
        assert result.decision is Decision.DROP, name
    rollback = sampler.should_sample(_parent(True), 1, "ROLLBACK;", SpanKind.CLIENT)  # type: ignore[arg-type]
    assert rollback.decision is Decision.RECORD_AND_SAMPLE
