"""`taskflow user export` against the real task service on Hypercorn and peers that are
real HTTP servers on 127.0.0.1 (one answers, one fails, one is not running); and the
re-application of erasures after a restore."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from quart import Quart
from quart.typing import TestClientProtocol as Client
from tortoise.transactions import in_transaction

from deploy.broker import free_port
from deploy.cli import main
from task_api.erasure import reapply_erasures
from task_api.settings import Config
from tests.integration.mcp.conftest import running
from tests.integration.task_api.conftest import SECRET, create
from tests.kafka_helpers import TopicReader, headers_of
from webapi.auth import issue_token

USER = web.AppKey("user", str)


async def _peer_export(request: web.Request) -> web.Response:
    user = request.app[USER]
    assert request.headers["Authorization"].startswith("Bearer ")
    return web.json_response({"service": "notifications", "user_id": user, "inbox": [1, 2]})


async def _broken(request: web.Request) -> web.Response:
    return web.json_response({"title": "boom"}, status=503)


async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def notify_peer(user: str) -> AsyncIterator[str]:
    app = web.Application()
    app[USER] = user
    app.router.add_get("/api/v1/me/export", _peer_export)
    async for base in _serve(app):
        yield base


@pytest.fixture
async def broken_peer() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/api/v1/me/export", _broken)
    async for base in _serve(app):
        yield base


async def test_user_export_gathers_every_service_and_reports_the_missing(
    task_config: Config,
    user: str,
    notify_peer: str,
    broken_peer: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "export.json"
    async with running(task_config) as task_base:
        token = issue_token(SECRET, user)
        async with httpx.AsyncClient(base_url=task_base) as http:
            made = await http.post(
                "/api/v1/tasks",
                json={"title": "Renew passport", "tags": ["papers"]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert made.status_code == 201
        monkeypatch.setenv("TASKFLOW_JWT_SECRET", SECRET)  # the CLI mints the user's token
        monkeypatch.setenv("TASKFLOW_TASK_API_BASE_URL", task_base)
        monkeypatch.setenv("TASKFLOW_NOTIFY_BASE_URL", notify_peer)
        monkeypatch.setenv("TASKFLOW_REMINDERS_BASE_URL", broken_peer)
        monkeypatch.setenv("TASKFLOW_AUDIT_BASE_URL", f"http://127.0.0.1:{free_port()}")
        code = await asyncio.to_thread(main, ["user", "export", "--user", user, "--out", str(out)])

    assert code == 1  # incomplete: two services did not give their part
    assert out.stat().st_mode & 0o077 == 0  # personal data: owner only
    document: dict[str, Any] = json.loads(out.read_text())
    assert document["format"] == "taskflow.user.export/v1" and document["user_id"] == user
    assert document["complete"] is False
    services = document["services"]
    assert set(services) == {"tasks", "notifications", "audit", "reminders"}
    tasks = services["tasks"]
    assert tasks["status"] == "ok"
    assert [t["title"] for t in tasks["data"]["tasks"]] == ["Renew passport"]
    assert tasks["data"]["tasks"][0]["id"] == made.json()["id"]
    assert services["notifications"] == {
        "status": "ok",
        "url": f"{notify_peer}/api/v1/me/export",
        "data": {"service": "notifications", "user_id": user, "inbox": [1, 2]},
    }
    assert services["reminders"]["status"] == "error"
    assert services["reminders"]["http_status"] == 503
    assert services["audit"]["status"] == "unavailable" and services["audit"]["error"]


async def test_reapplying_erasures_deletes_restored_rows_and_sends_user_erased_again(
    app: Quart, client: Client, auth: dict[str, str], user: str, tasks_topic: TopicReader
) -> None:
    await create(client, auth)
    erased = await (await client.delete("/api/v1/me", headers=auth)).get_json()
    restored = uuid.uuid4()
    async with in_transaction() as conn:
        # A restore loads rows with the triggers off (pg_restore creates them after data).
        await conn.execute_query("SET LOCAL session_replication_role = replica")
        await conn.execute_query(
            "INSERT INTO tasks (id, user_id, title, tags, reminders, timezone, priority,"
            " status, created_at, updated_at, version)"
            " VALUES ($1, $2, 'restored', '{}', '[]', 'UTC', 'low', 'open', now(), now(), 1)",
            [restored, user],
        )
    async with in_transaction() as conn:
        assert await reapply_erasures(conn, app.extensions["task_api"].sink) >= 1
    assert (await client.get(f"/api/v1/tasks/{restored}", headers=auth)).status_code == 404

    def erasures(msgs: list[Any]) -> list[Any]:
        return [m for m in msgs if headers_of(m).get("ce_type") == "user.erased"]

    # The erasure's own event, then the re-applied one (same erasure id).
    await tasks_topic.wait_for(
        lambda msgs: len([m for m in erasures(msgs) if m.key() == user.encode()]) >= 2
    )
    ours = [m for m in erasures(tasks_topic.messages) if m.key() == user.encode()]
    assert {json.loads(m.value())["data"]["erasure_id"] for m in ours} == {erased["erasure_id"]}
