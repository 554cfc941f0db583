"""CORS on the task API: the console's origin may call it from a browser, others may not."""

from __future__ import annotations

import pytest
from quart.typing import TestClientProtocol as Client

from task_api.app import create_app
from task_api.settings import Config, TaskApiSettings

CONSOLE = "http://127.0.0.1:8002"


def listed(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


async def test_an_allowed_origin_can_read_the_response_and_its_headers(
    client: Client, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/tasks", json={"title": "from the console"}, headers={**auth, "Origin": CONSOLE}
    )
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == CONSOLE
    exposed = {
        h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"etag", "location"} <= exposed
    assert "Origin" in response.headers["Vary"]


async def test_a_problem_response_to_an_allowed_origin_is_readable(client: Client) -> None:
    # Without the header the browser hides the 401 and the console could not say why.
    response = await client.get("/api/v1/tasks", headers={"Origin": CONSOLE})
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert response.headers["Access-Control-Allow-Origin"] == CONSOLE


async def test_another_origin_gets_no_cors_headers(client: Client, auth: dict[str, str]) -> None:
    headers = {**auth, "Origin": "http://evil.example"}
    response = await client.get("/api/v1/tasks", headers=headers)
    assert response.status_code == 200
    assert not [h for h in response.headers.keys() if h.lower().startswith("access-control-")]

    bad = await client.post("/api/v1/tasks", json={"nope": 1}, headers=headers)
    assert bad.status_code == 422
    assert bad.content_type == "application/problem+json"
    assert "Access-Control-Allow-Origin" not in bad.headers


async def test_a_preflight_from_the_console_is_answered_204(client: Client) -> None:
    response = await client.options(
        "/api/v1/tasks/0190a0a0-0000-7000-8000-000000000000/complete",
        headers={
            "Origin": "http://localhost:8002",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert response.status_code == 204
    assert await response.get_data() == b""
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:8002"
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert allowed == {"authorization", "content-type", "idempotency-key"}
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PATCH", "DELETE"} <= methods


async def test_a_preflight_from_another_origin_gets_no_permission(client: Client) -> None:
    response = await client.options(
        "/api/v1/tasks",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert not [h for h in response.headers.keys() if h.lower().startswith("access-control-")]


async def test_the_origins_come_from_settings(
    task_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_TASK_API_CORS_ORIGINS", '["https://console.example"]')
    service = TaskApiSettings(database_url=task_config.service.database_url, db_pool_size=5)
    app = create_app(Config(service=service, kafka=task_config.kafka, auth=task_config.auth))
    async with app.test_app():
        client = app.test_client()
        allowed = await client.get("/healthz", headers={"Origin": "https://console.example"})
        refused = await client.get("/healthz", headers={"Origin": CONSOLE})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://console.example"
    assert "Access-Control-Allow-Origin" not in refused.headers
