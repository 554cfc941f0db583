"""The task service's MCP endpoint (`/mcp`): the same use cases as REST, as tools."""

from task_api.mcp.asgi import McpMount, mount_mcp

__all__ = ["McpMount", "mount_mcp"]
