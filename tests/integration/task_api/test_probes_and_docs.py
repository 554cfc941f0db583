"""Probes, Prometheus metrics and the OpenAPI document of the task service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quart import Quart
from quart.typing import TestClientProtocol as Client
from tortoise.transactions import in_transaction

from task_api.db import outbox
from tests.integration.task_api.conftest import create
from tests.kafka_helpers import TopicReader


async def test_health_and_readiness(client: Client) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert (await ready.get_json())["checks"] == {"database": "ok", "kafka": "ok"}


async def test_metrics_cover_requests_and_the_outbox(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader
) -> None:
    await create(client, auth)
    await client.get("/api/v1/tasks/not-a-uuid", headers=auth)
    await tasks_topic.wait_count(1)

    async def scrape() -> str:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.content_type.startswith("text/plain")
        return (await response.get_data()).decode()

    text = await scrape()
    assert 'taskflow_http_requests_total{method="POST",route="/api/v1/tasks",status="201"}' in text
    assert 'status="404"' in text
    assert "taskflow_http_request_duration_seconds_bucket" in text
    assert "taskflow_outbox_backlog" in text
    assert 'taskflow_outbox_published_total{type="task.created"}' in text
    assert "taskflow_outbox_publish_lag_seconds_count" in text


async def test_openapi_documents_every_route(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}",
        "/api/v1/tasks/{task_id}/complete",
        "/api/v1/tasks/{task_id}/reopen",
        "/api/v1/tasks/{task_id}/snooze",
    }
    assert set(paths["/api/v1/tasks"]) >= {"get", "post"}
    assert set(paths["/api/v1/tasks/{task_id}"]) >= {"get", "patch", "delete"}
    create_body = paths["/api/v1/tasks"]["post"]["requestBody"]
    assert create_body["content"]["application/json"]["schema"]


async def test_published_rows_are_pruned_after_retention(
    app: Quart, client: Client, auth: dict[str, str], tasks_topic: TopicReader
) -> None:
    task = await create(client, auth)
    await tasks_topic.wait_count(1)
    async with in_transaction() as conn:
        rows = await conn.execute_query_dict(
            "SELECT published_at FROM outbox WHERE key = $1", [task["id"]]
        )
        assert rows and rows[0]["published_at"] is not None
        later = datetime.now(UTC) + timedelta(days=8)
        assert await outbox.prune(conn, timedelta(days=7), later) >= 1
        left = await conn.execute_query_dict("SELECT 1 FROM outbox WHERE key = $1", [task["id"]])
    assert left == []
