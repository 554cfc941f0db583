"""The MCP server of the task service (the SDK's low-level `Server`): tools, the
`taskflow://tasks/{id}` resources and their subscriptions, on both protocol eras (the
handshake era's `resources/subscribe`, 2026-07-28's `subscriptions/listen`)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from mcp.server import Server, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    EmptyResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    TextResourceContents,
    Tool,
    UnsubscribeRequestParams,
)
from tortoise.transactions import in_transaction

from task_api import queries, services
from task_api.commands import TaskFilter
from task_api.context import TaskContext
from task_api.exceptions import TaskNotFound
from task_api.mcp.calls import ToolCalls
from task_api.mcp.feed import TaskChangeFeed
from task_api.mcp.tools import TOOLS, Call, row_dict
from webapi.auth import Principal

log = logging.getLogger(__name__)

URI_PREFIX = "taskflow://tasks/"
URI_TEMPLATE = URI_PREFIX + "{id}"
PRINCIPAL_KEY = "taskflow.principal"
RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource
INSTRUCTIONS = (
    "TaskFlow manages the signed-in user's tasks (todo items) with reminders. Use list_tasks "
    "to find a task's id, then get_task/update_task/complete_task/snooze_task/delete_task. "
    "Times are RFC 3339 with an offset; durations ISO 8601 (PT15M). Each task is also the "
    "resource taskflow://tasks/{id}, which can be subscribed to for change notifications."
)


def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """The caller the HTTP layer authenticated (asgi.py puts it in the ASGI scope)."""
    request = ctx.request
    principal = request.scope.get(PRINCIPAL_KEY) if request is not None else None
    if not isinstance(principal, Principal):
        raise MCPError(INVALID_PARAMS, "not authenticated")
    return principal


def task_id_of(uri: str) -> uuid.UUID:
    if not uri.startswith(URI_PREFIX):
        raise MCPError(RESOURCE_NOT_FOUND, f"unknown resource {uri!r}")
    try:
        return uuid.UUID(uri.removeprefix(URI_PREFIX))
    except ValueError:
        raise MCPError(RESOURCE_NOT_FOUND, f"unknown resource {uri!r}") from None


@dataclass
class Subscriptions:
    """Who wants to hear about which task: handshake-era sessions by URI, and the bus that
    2026-07-28 listen streams read; both fed by the change feed."""

    bus: InMemorySubscriptionBus = field(default_factory=InMemorySubscriptionBus)
    sessions: dict[str, list[ServerSession]] = field(default_factory=dict)

    def add(self, uri: str, session: ServerSession) -> None:
        listeners = self.sessions.setdefault(uri, [])
        if session not in listeners:
            listeners.append(session)

    def remove(self, uri: str, session: ServerSession) -> None:
        listeners = self.sessions.get(uri, [])
        if session in listeners:
            listeners.remove(session)
        if not listeners:
            self.sessions.pop(uri, None)

    async def changed(self, task_id: str) -> None:
        uri = URI_PREFIX + task_id
        await self.bus.publish(ResourceUpdated(uri=uri))
        for session in list(self.sessions.get(uri, ())):
            try:
                await session.send_resource_updated(uri)
            except Exception:  # noqa: BLE001 - a gone session must not stop the others
                log.info("dropping a subscription whose session is gone", extra={"uri": uri})
                self.remove(uri, session)


class TaskMcpServer:
    """Builds the SDK server; holds what its handlers share."""

    def __init__(self, context: TaskContext, calls: ToolCalls, feed: TaskChangeFeed) -> None:
        self.context, self.calls, self.feed = context, calls, feed
        self.subscriptions = Subscriptions()
        self.listen = ListenHandler(self.subscriptions.bus)
        self.tools = [
            Tool(
                name=tool.name,
                title=tool.title,
                description=tool.description,
                input_schema=tool.input_schema(),
                output_schema=tool.output_schema,
                annotations=tool.annotations,
            )
            for tool in TOOLS
        ]

    def build(self) -> Server[Any]:
        return Server(
            "taskflow-tasks",
            version="1.0.0",
            title="TaskFlow tasks",
            instructions=INSTRUCTIONS,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource,
            on_subscribe_resource=self.subscribe,
            on_unsubscribe_resource=self.unsubscribe,
            on_subscriptions_listen=self.listen_to,
        )

    def call_of(self, ctx: ServerRequestContext[Any, Any]) -> Call:
        return Call(principal_of(ctx).user_id, self.context)

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return ListToolsResult(tools=self.tools)

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult:
        headers = dict(ctx.request.headers) if ctx.request is not None else {}
        return await self.calls(params.name, params.arguments, self.call_of(ctx), headers)

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        """The user's open tasks as resources (one page; list_tasks pages through all)."""
        user_id = principal_of(ctx).user_id
        async with in_transaction() as conn:
            page, _ = await queries.list_tasks(conn, user_id, TaskFilter(limit=200))
        return ListResourcesResult(
            resources=[
                Resource(
                    name=str(task.id),
                    title=task.title,
                    uri=f"{URI_PREFIX}{task.id}",
                    mime_type="application/json",
                )
                for task in page
            ]
        )

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListResourceTemplatesResult:
        template = ResourceTemplate(
            name="task",
            title="A task",
            uri_template=URI_TEMPLATE,
            description="One of your tasks as JSON (the same shape get_task returns).",
            mime_type="application/json",
        )
        return ListResourceTemplatesResult(resource_templates=[template])

    async def _owned(self, ctx: ServerRequestContext[Any, Any], uri: str) -> dict[str, Any]:
        task_id, user_id = task_id_of(uri), principal_of(ctx).user_id
        try:
            async with in_transaction() as conn:
                return row_dict(await services.get_task(conn, user_id, task_id))
        except TaskNotFound:
            raise MCPError(RESOURCE_NOT_FOUND, f"no such task: {uri}") from None

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        uri = str(params.uri)
        task = await self._owned(ctx, uri)
        contents = TextResourceContents(
            uri=uri, mime_type="application/json", text=orjson.dumps(task).decode()
        )
        return ReadResourceResult(contents=[contents])

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        uri = str(params.uri)
        await self._owned(ctx, uri)
        await self.feed.ensure_started()
        self.subscriptions.add(uri, ctx.session)
        return EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        self.subscriptions.remove(str(params.uri), ctx.session)
        return EmptyResult()

    async def listen_to(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        """2026-07-28 subscriptions: only the caller's own tasks may be listened to."""
        uris = params.notifications.resource_subscriptions or []
        for uri in uris:
            await self._owned(ctx, str(uri))
        if uris:
            await self.feed.ensure_started()
        return await self.listen(ctx, params)
