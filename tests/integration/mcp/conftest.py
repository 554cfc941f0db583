"""MCP fixtures: the real task service on Hypercorn (real PostgreSQL and Tansu), and the
SDK's own Streamable HTTP client signed in with a test token."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import httpx2
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from deploy.broker import free_port
from task_api.app import create_app
from task_api.settings import Config
from tests.integration.task_api.conftest import (
    SECRET,
    task_config,
    task_db_url,
    tasks_topic,
    user,
)
from webapi.auth import issue_token

__all__ = ["task_config", "task_db_url", "tasks_topic", "user"]

Connect = Callable[..., contextlib.AbstractAsyncContextManager[Client]]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Poll `check` until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)  # poll interval of a deadline loop


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[str]:
    """The task service (REST and MCP) on Hypercorn on a free port; yields its base URL."""
    app = create_app(config)
    port = free_port()
    server = HypercornConfig()
    server.bind = [f"127.0.0.1:{port}"]
    server.accesslog = None
    server.graceful_timeout = 2.0
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, server, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:

        async def up() -> bool:
            if task.done():
                task.result()
            try:
                return (await http.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(up, timeout=30)
    try:
        yield base
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def service(task_config: Config) -> AsyncIterator[str]:
    async with running(task_config) as base:
        yield base


def token_for(user_id: str) -> str:
    return issue_token(SECRET, user_id)


@pytest.fixture
def connect(service: str, user: str) -> Connect:
    """`async with connect() as client`: the SDK client as `user` (or `as_user`)."""

    @contextlib.asynccontextmanager
    async def open_client(
        as_user: str | None = None, mode: str = "auto", **options: Any
    ) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token_for(as_user or user)}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(f"{service}/mcp", http_client=http)
            async with Client(transport, mode=mode, **options) as client:  # type: ignore[arg-type]
                yield client

    return open_client


def structured(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def tool_error(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    text = result.content[0]
    return str(getattr(text, "text", ""))
