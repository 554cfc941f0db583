"""`/mcp` beside the Quart app in one ASGI app: a path dispatcher in front of both, bearer
auth with the RFC 9728 challenge, the protected-resource document, rate limits, and the
session manager's lifetime tied to Quart's serving hooks.

`mount_mcp(app, ...)` is the one call the app factory makes; it wraps `app.asgi_app`, so
every server that runs the Quart app (Hypercorn, uvicorn) serves `/mcp` too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, cast

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from prometheus_client import CollectorRegistry
from quart import Quart
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from observability.tracing import get_tracer
from task_api.context import TaskContext
from task_api.mcp.calls import ToolCalls
from task_api.mcp.feed import TaskChangeFeed
from task_api.mcp.server import PRINCIPAL_KEY, TaskMcpServer
from task_api.mcp.settings import McpSettings
from task_api.metrics import McpMetrics
from task_api.settings import Config
from webapi.auth import Principal, TokenVerifier, Unauthorized, bearer_token
from webapi.hardening import EXTENSION as HARDENING
from webapi.hardening import Hardening
from webapi.limits import TooManyRequests
from webapi.problems import PROBLEM_JSON, TYPE_BASE

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"


def _problem(status: int, title: str, slug: str, detail: str, headers: dict[str, str]) -> Response:
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status, headers=headers, media_type=PROBLEM_JSON)


@dataclass
class McpEndpoint:
    """The ASGI side of `/mcp`: who may call, how often, and what they are told."""

    settings: McpSettings
    tokens: TokenVerifier
    issuers: list[str]
    manager: StreamableHTTPSessionManager
    app: Quart

    def base_url(self, request: Request) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"{request.url.scheme}://{request.url.netloc}"

    def metadata(self, request: Request) -> Response:
        """RFC 9728: the resource, the issuers whose tokens it takes, how to send them."""
        document: dict[str, Any] = {
            "resource": self.base_url(request) + MCP_PATH,
            "authorization_servers": self.issuers,
            "bearer_methods_supported": ["header"],
            "resource_name": "TaskFlow tasks (MCP)",
            "resource_documentation": "https://github.com/taskflow/taskflow/blob/main/docs/chatbot.md",
        }
        return JSONResponse(document, headers={"Cache-Control": "max-age=300"})

    def challenge(self, request: Request, exc: Unauthorized, token_sent: bool) -> Response:
        metadata_url = self.base_url(request) + METADATA_PATH
        value = f'Bearer resource_metadata="{metadata_url}"'
        if token_sent:
            value += ', error="invalid_token"'
        return _problem(
            401, "Unauthorized", "unauthorized", exc.detail, {"WWW-Authenticate": value}
        )

    def client_ip(self, request: Request) -> str:
        """The peer, or what the trusted proxies saw (as `Hardening.client_ip` for Quart)."""
        hardening = self.app.extensions.get(HARDENING)
        hops = hardening.settings.trusted_proxies if isinstance(hardening, Hardening) else 0
        if hops > 0:
            forwarded = request.headers.get("X-Forwarded-For", "")
            route = [part.strip() for part in forwarded.split(",") if part.strip()]
            if len(route) >= hops:
                return route[-hops]
        return request.client.host if request.client else "unknown"

    async def admit(self, request: Request) -> tuple[Principal | None, Response | None]:
        """The caller, or the response refusing them (401 with the challenge, or 429)."""
        authorization = request.headers.get("Authorization")
        principal: Principal | None = None
        refusal: Response | None = None
        try:
            principal = await self.tokens.verify_async(bearer_token(authorization))
        except Unauthorized as exc:
            refusal = self.challenge(request, exc, bool(authorization))
        hardening = self.app.extensions.get(HARDENING)
        if isinstance(hardening, Hardening):
            try:
                hardening.check_http(self.client_ip(request), principal)
            except TooManyRequests as exc:
                return None, _problem(429, exc.title, exc.slug, exc.detail, exc.headers)
        if principal is None:
            return None, refusal
        return principal, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        principal, refusal = await self.admit(request)
        if refusal is not None or principal is None:
            await (refusal or _problem(401, "Unauthorized", "unauthorized", "", {}))(
                scope, receive, send
            )
            return
        scope[PRINCIPAL_KEY] = principal
        # The SDK binds a session to the credential that opened it (same user, or 404).
        scope["user"] = AuthenticatedUser(
            AccessToken(
                token="",  # noqa: S106 - not kept: the user id identifies the owner
                client_id=principal.user_id,
                scopes=[],
                subject=principal.user_id,
            )
        )
        await self.manager.handle_request(scope, receive, send)


@dataclass
class McpDispatcher:
    """Path prefix `/mcp` (and the metadata document) to MCP; everything else to Quart."""

    quart: AsgiApp
    endpoint: McpEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope.get("path", "")
            if path == MCP_PATH or path.startswith(MCP_PATH + "/"):
                await self.endpoint(scope, receive, send)
                return
            if path == METADATA_PATH or path == METADATA_PATH + MCP_PATH:
                await self.endpoint.metadata(Request(scope, receive))(scope, receive, send)
                return
        await self.quart(scope, receive, send)


@dataclass
class McpMount:
    """What `mount_mcp` made, for tests and shutdown."""

    server: TaskMcpServer
    manager: StreamableHTTPSessionManager
    feed: TaskChangeFeed
    endpoint: McpEndpoint
    _running: asyncio.Task[None] | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    def on_change(self, task_id: str) -> None:
        task = asyncio.ensure_future(self.server.subscriptions.changed(task_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def start(self) -> None:
        """Run the session manager in a task of its own: its task group then lives from
        Quart's before_serving to after_serving without spanning two hook calls."""
        started = asyncio.Event()

        async def run() -> None:
            async with self.manager.run():
                started.set()
                await self._stopping.wait()

        self._running = asyncio.create_task(run(), name="mcp-session-manager")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, self._running}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._running.done():
            self._running.result()  # raise what stopped it

    async def stop(self) -> None:
        self.server.listen.close()
        self._stopping.set()
        if self._running is not None:
            await self._running
        await self.feed.stop()


def mount_mcp(
    app: Quart,
    context: TaskContext,
    config: Config,
    registry: CollectorRegistry,
    *,
    service_name: str,
    settings: McpSettings | None = None,
) -> McpMount | None:
    """Serve MCP at `/mcp` from `app`'s own ASGI callable (wraps `app.asgi_app`)."""
    settings = settings or McpSettings()
    if not settings.enabled:
        return None
    issuers = settings.authorization_servers or (
        [config.auth.jwt_issuer] if config.auth.jwt_issuer else []
    )
    calls = ToolCalls(get_tracer("task_api.mcp", service_name), McpMetrics.create(registry))
    mount_ref: list[McpMount] = []
    feed = TaskChangeFeed(config.kafka, lambda task_id: mount_ref[0].on_change(task_id))
    server = TaskMcpServer(context, calls, feed)
    manager = StreamableHTTPSessionManager(
        app=server.build(),
        json_response=settings.json_response,
        stateless=settings.stateless,
        max_request_body_size=config.service.max_body_bytes,
        session_idle_timeout=settings.session_idle_timeout.total_seconds(),
        max_sessions=settings.max_sessions,
    )
    endpoint = McpEndpoint(settings, context.tokens, issuers, manager, app)
    mount = McpMount(server, manager, feed, endpoint)
    mount_ref.append(mount)
    app.before_serving(mount.start)
    app.after_serving(mount.stop)
    app.asgi_app = McpDispatcher(cast(AsgiApp, app.asgi_app), endpoint)  # type: ignore[method-assign,assignment]
    app.extensions["task_api.mcp"] = mount
    return mount
