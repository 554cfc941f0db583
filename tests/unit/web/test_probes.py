"""/healthz from the heartbeats: 200 while every loop is live, 503 problem+json naming the
stale ones; readiness is not affected. The flows' metrics port answers the same way."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from quart import Quart

from observability.metrics.serve import health_app
from runtime.heartbeat import Heartbeats
from webapi.probes import probes_blueprint


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_healthz_names_the_stale_loop_and_readiness_stays() -> None:
    clock = FakeClock()
    beats = Heartbeats(clock)
    beats.add("outbox-relay", timedelta(seconds=90)).beat()
    beats.add("audit-verify", timedelta(seconds=900)).beat()

    async def database() -> None:
        return None

    app = Quart(__name__)
    app.register_blueprint(
        probes_blueprint({"database": database}, CollectorRegistry(), stale=beats.stale)
    )
    client = app.test_client()
    assert (await client.get("/healthz")).status_code == 200

    clock.now = 120.0
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    body = await response.get_json()
    assert body["type"].endswith("/not-live")
    assert body["errors"] == [
        {"field": "outbox-relay", "message": "silent for 120.0 s (allowed 90 s)"}
    ]
    assert "outbox-relay silent" in body["detail"]
    assert (await client.get("/readyz")).status_code == 200


def call(app: Any, path: str) -> tuple[str, dict[str, str], Any]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body: Iterable[bytes] = app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response)
    return seen["status"], seen["headers"], b"".join(body)


def test_the_flow_metrics_port_answers_healthz_from_heartbeats() -> None:
    clock = FakeClock()
    beats = Heartbeats(clock)
    beats.add("kafka_in/taskflow.tasks-0", timedelta(seconds=120)).beat()

    def metrics(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"metrics"]

    app = health_app(metrics, beats.stale)
    assert call(app, "/metrics")[2] == b"metrics"
    status, _, body = call(app, "/healthz")
    assert status.startswith("200") and json.loads(body) == {"status": "ok"}

    clock.now = 121.0
    status, headers, body = call(app, "/healthz")
    assert status.startswith("503")
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert [e["field"] for e in problem["errors"]] == ["kafka_in/taskflow.tasks-0"]
