"""The same app under uvicorn: `/mcp` is served beside REST, and the session manager's
lifetime follows the ASGI lifespan (startup and a clean shutdown)."""

from __future__ import annotations

import asyncio

import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from deploy.broker import free_port
from task_api.app import create_app
from task_api.settings import Config
from tests.integration.mcp.conftest import eventually, structured, token_for

pytestmark = pytest.mark.integration


async def test_mcp_and_rest_under_uvicorn(task_config: Config) -> None:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(task_config), host="127.0.0.1", port=port, lifespan="on", log_level="warning"
        )
    )
    serving = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, timeout=30)
        headers = {"Authorization": f"Bearer {token_for('uvicorn-user')}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http2,
            Client(streamable_http_client(f"{base}/mcp", http_client=http2)) as client,
        ):
            task = structured(await client.call_tool("create_task", {"title": "under uvicorn"}))
            got = structured(await client.call_tool("get_task", {"task_id": task["id"]}))
            assert got["title"] == "under uvicorn"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
