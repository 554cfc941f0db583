"""Probes, Prometheus metrics and the OpenAPI document of the task service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from quart.typing import TestClientProtocol as Client

from task_api.db import relay_store
from tests.integration.task_api.conftest import create
from tests.kafka_helpers import TopicReader


async def test_health_and_readiness(client: Client) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    # The broker is not a readiness dependency of a REST API (writes wait in the outbox).
    assert (await ready.get_json())["checks"] == {"database": "ok"}


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


async def test_published_rows_and_old_keys_are_pruned(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader, task_db_url: str
) -> None:
    keyed = {**auth, "Idempotency-Key": f"prune-{uuid.uuid4()}"}
    task = await (await client.post("/api/v1/tasks", json={"title": "p"}, headers=keyed)).get_json()
    await tasks_topic.wait_count(1)
    conn = await asyncpg.connect(task_db_url)
    try:
        published = await conn.fetchval(
            "SELECT published_at FROM outbox WHERE key = $1", task["id"]
        )
        assert published is not None  # marked only once delivered
        now = datetime.now(UTC)
        # Within retention nothing goes ...
        await relay_store.prune(conn, now, timedelta(days=7), timedelta(hours=24))
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE key = $1", task["id"]) == 1
        # ... past it, the published row and the expired key do.
        later = now + timedelta(days=8)
        pruned, keys = await relay_store.prune(conn, later, timedelta(days=7), timedelta(hours=24))
        assert pruned >= 1 and keys >= 1
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE key = $1", task["id"]) == 0
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM idempotency_keys WHERE key = $1", keyed["Idempotency-Key"]
            )
            == 0
        )
    finally:
        await conn.close()
