"""observability.otlp writes the very bytes the official OTLP encoder serialises."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest
from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.trace.span import NonRecordingSpan

from observability.otlp import HttpSpanExporter, encode_spans

EVERY_TYPE = {
    "str": "kafka",
    "empty.str": "",
    "unicode": "tâche ✓ 任务",
    "long.str": "x" * 300,
    "true": True,
    "false": False,
    "zero": 0,
    "int": 8080,
    "negative": -1,
    "int64.min": -(2**63),
    "int64.max": 2**63 - 1,
    "float": 1.5,
    "float.zero": 0.0,
    "float.negative": -2.25e-300,
    "strs": ("a", "", "c"),
    "bools": (True, False),
    "ints": (1, -2, 300),
    "floats": (0.5, 2.0),
    "empty.seq": (),
}


def _assert_same(spans: Sequence[ReadableSpan]) -> None:
    ours = encode_spans(spans)
    theirs = official(spans)
    assert ExportTraceServiceRequest.FromString(ours) == theirs
    assert ours == theirs.SerializeToString()


def _provider(resource: Resource) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _remote_parent(trace_state: TraceState | None = None) -> NonRecordingSpan:
    return NonRecordingSpan(
        SpanContext(
            0x0AF7651916CD43DD8448EB211C80319C,
            0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
            trace_state=trace_state,
        )
    )


def test_a_recorded_trace_of_every_kind_is_encoded_exactly() -> None:
    provider, exporter = _provider(
        Resource.create({"service.name": "task-api", "service.version": "1.2"}, "https://r/1")
    )
    tracer = provider.get_tracer("taskflow.http", "0.1", "https://s/1", {"scope.attr": 3})
    parent = set_span_in_context(_remote_parent(TraceState([("vendor", "v1"), ("b", "x")])))
    with tracer.start_as_current_span("POST /api/v1/tasks", parent, SpanKind.SERVER) as server:
        server.set_attributes(EVERY_TYPE)
        server.add_event("retry", {"attempt": 2}, timestamp=1_700_000_000_000_000_001)
        server.add_event("")
        other = provider.get_tracer("taskflow.messaging")
        link = Link(_remote_parent().get_span_context(), {"why": "digest"})
        for kind in SpanKind:
            with other.start_as_current_span(f"span {kind.name}", kind=kind, links=[link]):
                pass
        with tracer.start_as_current_span("fails") as failing:
            failing.set_status(Status(StatusCode.ERROR, "boom: ✗"))
        with tracer.start_as_current_span("ok") as ok:
            ok.set_status(Status(StatusCode.OK))
        with pytest.raises(ValueError), tracer.start_as_current_span("raises"):
            raise ValueError("bad input")
    _assert_same(exporter.get_finished_spans())
    provider.shutdown()


def test_spans_of_several_resources_and_scopes_are_grouped_like_the_official_encoder() -> None:
    one, one_spans = _provider(Resource.create({"service.name": "a"}))
    two, two_spans = _provider(Resource.create({"service.name": "b"}))
    # An equal resource in another object joins the first group, as the official encoder's
    # dict keyed by Resource does.
    again, again_spans = _provider(Resource.create({"service.name": "a"}))
    for provider, scope in ((one, "x"), (two, "x"), (one, "y"), (again, "x"), (two, "z")):
        with provider.get_tracer(scope).start_as_current_span(f"{scope} work"):
            pass
    spans = [
        *one_spans.get_finished_spans(),
        *two_spans.get_finished_spans(),
        *again_spans.get_finished_spans(),
    ]
    _assert_same(spans)
    _assert_same(spans[::-1])
    for provider in (one, two, again):
        provider.shutdown()


def _readable(**kwargs: object) -> ReadableSpan:
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    fields: dict[str, object] = {
        "name": "s",
        "context": context,
        "resource": Resource({}),
        "start_time": 1,
        "end_time": 2,
    }
    return ReadableSpan(**(fields | kwargs))  # type: ignore[arg-type]


def test_spans_the_sdk_builds_rarely_are_encoded_exactly() -> None:
    scope = InstrumentationScope("lib", None, None, None)
    spans = [
        _readable(name="", start_time=0, end_time=0),
        _readable(instrumentation_scope=scope, kind=SpanKind.CONSUMER),
        _readable(parent=SpanContext(1, 0, is_remote=False)),
        _readable(attributes={"nones": ("a", None), "big": 2**40, "bytes": b"\x00\xff"}),
        _readable(attributes={"": "no key", "kv": {"nested": {"deep": [1, "two"]}}}),
        _readable(
            events=[Event("e", {"k": "v"}, timestamp=5)],
            links=[Link(SpanContext(3, 4, is_remote=False), {"a": 1})],
            status=Status(StatusCode.ERROR),
        ),
        _readable(resource=Resource({"r": 1}, schema_url="https://r"), status=Status()),
    ]
    _assert_same(spans)


def test_an_attribute_that_does_not_fit_is_left_out_as_the_official_encoder_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spans = [_readable(attributes={"before": 1, "huge": 2**64, "seq": (1, 2**70), "after": 2})]
    with caplog.at_level(logging.ERROR):
        _assert_same(spans)
    assert (
        ExportTraceServiceRequest.FromString(encode_spans(spans))
        .resource_spans[0]
        .scope_spans[0]
        .spans[0]
        .attributes[1]
        .key
        == "after"
    )


def test_no_spans_is_an_empty_request() -> None:
    assert encode_spans([]) == b""


@dataclass(frozen=True, slots=True)
class Answer(BaseHTTPResult):
    body: bytes = b""

    def content(self) -> bytes:
        return self.body

    def headers(self) -> Mapping[str, str]:
        return {}


class Collector(BaseHTTPTransport):
    """An OTLP/HTTP endpoint in memory: keeps each request body, answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[bytes] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        assert method == "POST" and url == "http://collector:4318/v1/traces"
        assert headers is not None
        assert {k.lower(): v for k, v in headers.items()}["content-type"] == (
            "application/x-protobuf"
        )
        self.bodies.append(data or b"")
        return Answer(status_code=self.status, reason="")

    def close(self) -> None:
        pass

    def is_connection_error(self, exception: Exception | None) -> bool:
        return False


def _exporter(collector: Collector, **kwargs: int) -> HttpSpanExporter:
    return HttpSpanExporter("http://collector:4318/v1/traces", _transport=collector, **kwargs)


def test_the_exporter_posts_the_encoded_request() -> None:
    spans = [_readable(attributes={"k": "v"}), _readable(name="other")]
    collector = Collector()
    exporter = _exporter(collector)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert collector.bodies == [official(spans).SerializeToString()]
    exporter.shutdown()  # type: ignore[no-untyped-call]
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert len(collector.bodies) == 1


def test_a_rejected_or_oversized_batch_is_a_failure() -> None:
    spans = [_readable(attributes={"k": "v" * 100})]
    assert _exporter(Collector(status=400)).export(spans) is SpanExportResult.FAILURE
    collector = Collector()
    assert _exporter(collector, max_request_size=64).export(spans) is SpanExportResult.FAILURE
    assert collector.bodies == []
