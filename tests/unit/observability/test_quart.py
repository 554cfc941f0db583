from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from quart import Quart, websocket

from observability.logs import setup_logging
from observability.quart import instrument_app
from tests.unit.observability.conftest import SERVICE


def _app(registry: CollectorRegistry) -> Quart:
    app = Quart(__name__)

    @app.get("/api/v1/tasks/<task_id>")
    async def get_task(task_id: str) -> dict[str, str]:
        return {"id": task_id}

    @app.post("/api/v1/tasks/")
    async def boom() -> dict[str, str]:
        raise RuntimeError("handler bug")

    @app.get("/metrics")
    async def metrics() -> str:
        return "ok"

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()
        for _ in range(5):
            await websocket.send(await websocket.receive())

    instrument_app(app, SERVICE, registry)
    return app


def _count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in fam.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def test_server_span_and_metrics_by_route_template(spans: InMemorySpanExporter) -> None:
    registry = CollectorRegistry()
    client = _app(registry).test_client()
    assert (await client.get("/api/v1/tasks/t-1")).status_code == 200
    assert (await client.get("/api/v1/tasks/t-2")).status_code == 200
    assert (await client.get("/nowhere")).status_code == 404
    (ok1, ok2, missing) = spans.get_finished_spans()
    assert ok1.name == "GET /api/v1/tasks/<task_id>"
    assert ok1.kind is SpanKind.SERVER
    assert ok1.attributes is not None
    assert ok1.attributes["http.route"] == "/api/v1/tasks/<task_id>"
    assert ok1.attributes["http.request.method"] == "GET"
    assert ok1.attributes["http.response.status_code"] == 200
    assert ok1.attributes["url.path"] == "/api/v1/tasks/t-1"
    assert ok1.resource.attributes["service.name"] == SERVICE
    assert ok1.context.trace_id != ok2.context.trace_id
    assert missing.name == "GET /nowhere"
    route = "/api/v1/tasks/<task_id>"
    assert _count(registry, "taskflow_http_requests_total", route=route, status="200") == 2
    assert _count(registry, "taskflow_http_request_duration_seconds_count", route=route) == 2
    assert _count(registry, "taskflow_http_requests_total", route="<unmatched>", status="404") == 1


async def test_an_unhandled_error_is_a_500_span_and_metric(spans: InMemorySpanExporter) -> None:
    registry = CollectorRegistry()
    app = _app(registry)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = await app.test_client().post("/api/v1/tasks/", json={})
    assert response.status_code == 500
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "500"
    assert span.attributes["http.response.status_code"] == 500
    assert (
        _count(
            registry,
            "taskflow_http_requests_total",
            route="/api/v1/tasks/",
            method="POST",
            status="500",
        )
        == 1
    )


async def test_incoming_traceparent_is_continued(spans: InMemorySpanExporter) -> None:
    client = _app(CollectorRegistry()).test_client()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await client.get("/api/v1/tasks/t-1", headers={"traceparent": parent})
    (span,) = spans.get_finished_spans()
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331


async def test_an_unsampled_request_makes_no_span_but_keeps_its_trace_id(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    client = _app(CollectorRegistry()).test_client()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    with caplog.at_level(logging.INFO, logger="taskflow.access"):
        response = await client.get("/api/v1/tasks/t-1", headers={"traceparent": parent})
    assert response.status_code == 200
    assert spans.get_finished_spans() == ()
    (record,) = [r for r in caplog.records if r.name == "taskflow.access"]
    assert record.http_route == "/api/v1/tasks/<task_id>"  # type: ignore[attr-defined]


async def test_a_sampled_server_span_has_the_request_attributes(
    spans: InMemorySpanExporter,
) -> None:
    client = _app(CollectorRegistry()).test_client()
    await client.get("/api/v1/tasks/t-1?x=1", headers={"user-agent": "probe/1"})
    (span,) = spans.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs["http.request.method"] == "GET"
    assert attrs["url.scheme"] == "http"
    assert attrs["url.query"] == "x=1"
    assert attrs["server.address"] == "localhost"
    assert attrs["user_agent.original"] == "probe/1"
    assert "error.type" not in attrs and span.status.status_code is StatusCode.UNSET


async def test_scrapes_are_not_traced_but_counted(spans: InMemorySpanExporter) -> None:
    registry = CollectorRegistry()
    client = _app(registry).test_client()
    assert (await client.get("/metrics")).status_code == 200
    assert spans.get_finished_spans() == ()
    assert _count(registry, "taskflow_http_requests_total", route="/metrics") == 1


async def test_websocket_frames_make_no_spans(spans: InMemorySpanExporter) -> None:
    registry = CollectorRegistry()
    client = _app(registry).test_client()
    async with client.websocket("/ws") as ws:
        for i in range(5):
            await ws.send(f"m{i}")
            assert await ws.receive() == f"m{i}"
    finished = spans.get_finished_spans()
    # One span for the whole connection, none per frame.
    assert [s.name for s in finished] == ["WEBSOCKET /ws"]
    assert _count(registry, "taskflow_http_requests_total") == 0


async def test_access_log_line_carries_the_server_span(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_LOG_FORMAT", "json")
    monkeypatch.delenv("TASKFLOW_LOG_LEVEL", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    try:
        setup_logging(SERVICE, stream=out)
        app = _app(CollectorRegistry())

        @app.get("/healthz")
        async def healthz() -> str:
            return "ok"

        @app.get("/readyz")
        async def readyz() -> str:
            return "ok"

        client = app.test_client()
        await client.get("/api/v1/tasks/t-9")
        for quiet in ("/metrics", "/healthz", "/readyz"):  # scrapes and probes are not logged
            assert (await client.get(quiet)).status_code == 200
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    (span,) = spans.get_finished_spans()
    assert line["logger"] == "taskflow.access"
    assert line["message"].startswith("GET /api/v1/tasks/t-9 200 ")
    assert line["http_method"] == "GET"
    assert line["http_route"] == "/api/v1/tasks/<task_id>"
    assert line["http_status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["trace_id"] == format(span.context.trace_id, "032x")
    assert line["span_id"] == format(span.context.span_id, "016x")


async def test_access_log_can_be_turned_off(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    app = Quart(__name__)

    @app.get("/x")
    async def x() -> str:
        return "x"

    instrument_app(app, SERVICE, CollectorRegistry(), log_requests=False)
    with caplog.at_level(logging.INFO, logger="taskflow.access"):
        await app.test_client().get("/x")
    assert not [r for r in caplog.records if r.name == "taskflow.access"]
