"""The MCP handshake, the tool list, auth (401 with the RFC 9728 challenge, audience) and
the protected-resource document, and resource subscriptions."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import ResourceUpdatedNotification
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from task_api.settings import Config
from tests.integration.mcp.conftest import Connect, running, structured
from tests.integration.task_api.conftest import SECRET
from webapi.auth import AuthSettings, issue_token

pytestmark = pytest.mark.integration

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "0"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


async def test_initialize_handshake(connect: Connect) -> None:
    async with connect(mode="legacy") as client:
        assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
        assert client.server_info is not None and client.server_info.name == "taskflow-tasks"
        capabilities = client.server_capabilities
        assert capabilities.tools is not None
        assert capabilities.resources is not None and capabilities.resources.subscribe


async def test_tools_are_listed_with_schemas_and_truthful_annotations(connect: Connect) -> None:
    async with connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {
        "create_task",
        "list_tasks",
        "get_task",
        "update_task",
        "complete_task",
        "reopen_task",
        "snooze_task",
        "delete_task",
        "upcoming_reminders",
    }
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40
        assert tool.input_schema["type"] == "object" and tool.output_schema is not None
        assert tool.annotations is not None and tool.annotations.open_world_hint is False
    create = tools["create_task"].input_schema
    assert create["required"] == ["title"] and create["additionalProperties"] is False
    assert "idempotency_key" in create["properties"]
    assert {"task_id", "version"} <= set(tools["update_task"].input_schema["properties"])
    assert "for" in tools["snooze_task"].input_schema["properties"]
    for name in ("list_tasks", "get_task", "upcoming_reminders"):
        assert tools[name].annotations.read_only_hint is True  # type: ignore[union-attr]
    delete = tools["delete_task"].annotations
    assert delete is not None and delete.destructive_hint and delete.idempotent_hint
    create_hints = tools["create_task"].annotations
    assert create_hints is not None and create_hints.read_only_hint is False
    assert create_hints.destructive_hint is False and create_hints.idempotent_hint is False


async def test_no_token_gets_401_with_the_resource_metadata_challenge(service: str) -> None:
    async with httpx.AsyncClient(base_url=service) as http:
        missing = await http.post("/mcp", json=INIT, headers=ACCEPT)
        forged = await http.post(
            "/mcp",
            json=INIT,
            headers={**ACCEPT, "Authorization": f"Bearer {issue_token('x' * 40, 'mallory')}"},
        )
        document = await http.get("/.well-known/oauth-protected-resource")
    metadata = f'resource_metadata="{service}/.well-known/oauth-protected-resource"'
    assert (
        missing.status_code == 401 and missing.headers["WWW-Authenticate"] == f"Bearer {metadata}"
    )
    assert missing.headers["content-type"] == "application/problem+json"
    assert (
        forged.status_code == 401 and 'error="invalid_token"' in forged.headers["WWW-Authenticate"]
    )
    assert document.status_code == 200
    assert document.json()["resource"] == f"{service}/mcp"
    assert document.json()["bearer_methods_supported"] == ["header"]


async def test_issuer_is_published_and_audience_checked(task_config: Config) -> None:
    issuer, audience = "https://login.example.test", "https://tasks.example.test/mcp"
    config = Config(
        service=task_config.service,
        kafka=task_config.kafka,
        auth=AuthSettings(jwt_secret=SECRET, jwt_issuer=issuer, jwt_audience=audience),
    )
    good = issue_token(SECRET, "alice", audience=audience, issuer=issuer)
    wrong = issue_token(SECRET, "alice", audience="https://elsewhere.test", issuer=issuer)
    async with running(config) as base, httpx.AsyncClient(base_url=base) as http:
        document = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        refused = await http.post(
            "/mcp", json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {wrong}"}
        )
        accepted = await http.post(
            "/mcp", json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {good}"}
        )
    assert document["authorization_servers"] == [issuer]
    assert refused.status_code == 401
    assert accepted.status_code == 200 and accepted.headers.get("mcp-session-id")


async def test_subscribers_hear_of_changes_to_their_task(connect: Connect) -> None:
    updates: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.put_nowait(str(message.params.uri))

    async with connect(mode="legacy", message_handler=on_message) as client:
        task = structured(await client.call_tool("create_task", {"title": "watch me"}))
        uri = f"taskflow://tasks/{task['id']}"
        read = await client.read_resource(uri)
        assert '"watch me"' in read.contents[0].text  # type: ignore[union-attr]
        templates = await client.list_resource_templates()
        assert templates.resource_templates[0].uri_template == "taskflow://tasks/{id}"
        with warnings.catch_warnings():  # deprecated only for 2026-07-28 peers (listen)
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.subscribe_resource(uri)
        # A change made through another connection (as from another instance) is heard.
        async with connect() as other:
            await other.call_tool("update_task", {"task_id": task["id"], "title": "changed"})
        assert await asyncio.wait_for(updates.get(), 20) == uri
    async with connect(as_user="someone-else", mode="legacy") as stranger:
        with pytest.raises(MCPError, match="no such task"):
            await stranger.read_resource(uri)
        with pytest.raises(MCPError, match="no such task"), warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await stranger.subscribe_resource(uri)
