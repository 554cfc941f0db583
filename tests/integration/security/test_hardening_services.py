"""Each of the four services installs the hardening: a flood from one address gets 429
problem+json with Retry-After, probes stay open, every response has the security headers,
and the console page has a policy that lets it run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from quart import Quart

from audit_store.app import create_app as audit_app
from audit_store.settings import AuditSettings
from events.kafka import KafkaSettings
from notify_ws.app import create_app as notify_app
from notify_ws.settings import Config as NotifyConfig
from reminders.app import create_app as reminders_app
from task_api.app import create_app as task_app
from task_api.settings import Config as TaskConfig
from webapi.auth import AuthSettings
from webapi.hardening import WebSecuritySettings

SECRET = "hardening-services-secret-0123456789abcdef"
AUTH = AuthSettings(jwt_secret=SECRET)
LIMITED = WebSecuritySettings(rate_limit_per_ip="3/minute")

AppFactory = Callable[[], Awaitable[Quart]]


@asynccontextmanager
async def serving(app: Quart, start: bool) -> AsyncIterator[Quart]:
    if not start:
        yield app
        return
    async with app.test_app():
        yield app


@pytest.fixture(params=["task_api", "notify_ws", "audit_store", "reminders"])
async def service(
    request: pytest.FixtureRequest,
    create_database: Callable[[str], Awaitable[str]],
) -> AsyncIterator[tuple[str, Quart]]:
    """The real app of each service with a tight per-IP limit. The 401/429 paths touch no
    database; the audit service looks its services up at startup, so it is started."""
    kafka = KafkaSettings(bootstrap="127.0.0.1:9")
    name = request.param
    start = False
    if name == "task_api":
        app = task_app(TaskConfig(kafka=kafka, auth=AUTH, security=LIMITED))
        path = "/api/v1/tasks"
    elif name == "notify_ws":
        app = notify_app(NotifyConfig(kafka=kafka, auth=AUTH, security=LIMITED))
        path = "/api/v1/notifications"
    elif name == "audit_store":
        url = await create_database("hardening_audit")
        app = audit_app(
            AuditSettings(database_url=url), AUTH, None, background=False, security=LIMITED
        )
        path, start = "/api/v1/audit", True
    else:
        app = reminders_app(auth=AUTH, kafka=kafka, security=LIMITED)
        path = "/api/v1/reminders"
    app.config["hardening_test_path"] = path
    async with serving(app, start):
        yield name, app


async def test_a_flood_from_one_address_is_refused_with_429(service: tuple[str, Quart]) -> None:
    name, app = service
    client, path = app.test_client(), app.config["hardening_test_path"]
    for _ in range(3):
        response = await client.get(path)
        assert response.status_code == 401, name
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    refused = await client.get(path, headers={"Authorization": "Bearer forged"})
    assert refused.status_code == 429, name
    assert refused.content_type == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-Frame-Options"] == "DENY"
    body = await refused.get_json()
    assert body["status"] == 429 and body["title"] == "Too many requests"
    assert (await client.get("/healthz")).status_code == 200


async def test_the_console_page_gets_a_policy_that_lets_it_run() -> None:
    kafka = KafkaSettings(bootstrap="127.0.0.1:9")
    app = notify_app(NotifyConfig(kafka=kafka, auth=AUTH))
    response = await app.test_client().get("/console")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "default-src 'self'" in csp  # its own script file
    assert "connect-src 'self' http: https: ws: wss:" in csp  # the task API and /ws
    assert "frame-ancestors 'none'" in csp
    api = await app.test_client().get("/api/v1/notifications")
    assert api.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
