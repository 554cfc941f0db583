"""Settings of the task service's MCP endpoint (`TASKFLOW_TASK_API_MCP_*`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic_settings import BaseSettings, SettingsConfigDict


class McpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKFLOW_TASK_API_MCP_", extra="ignore")

    enabled: bool = True
    # The public origin clients reach the service at (https://tasks.example.com), named in
    # the protected-resource document and the 401 challenge. Unset: taken from the request.
    public_url: str | None = None
    # Issuers named in /.well-known/oauth-protected-resource (JSON list). Unset: the
    # configured TASKFLOW_JWT_ISSUER, if any.
    authorization_servers: list[str] = []
    # Stateless: no Mcp-Session-Id, any instance answers any request (no sticky routing
    # needed), but handshake-era clients then get no resources/subscribe notifications.
    stateless: bool = False
    # Answer POSTs with one JSON body instead of an SSE stream.
    json_response: bool = False
    session_idle_timeout: timedelta = timedelta(minutes=30)
    max_sessions: int = 10_000
