"""Talk to the task service's MCP endpoint with the official SDK: sign in with a dev token,
create a task with a reminder, list tasks.

    taskflow up                      # or: taskflow serve task-api
    python examples/mcp_client.py    # TASKFLOW_MCP_URL / TASKFLOW_TOKEN override the defaults
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

URL = os.environ.get("TASKFLOW_MCP_URL", "http://127.0.0.1:8001/mcp")


def dev_token(user: str = "alice") -> str:
    """TASKFLOW_TOKEN, or a fresh one from `taskflow token --user alice` (local secret)."""
    if token := os.environ.get("TASKFLOW_TOKEN"):
        return token
    taskflow = shutil.which("taskflow") or "taskflow"
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [taskflow, "token", "--user", user], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


async def main() -> None:
    headers = {"Authorization": f"Bearer {dev_token()}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(URL, http_client=http)) as client,
    ):
        tools = await client.list_tools()
        print("tools:", ", ".join(tool.name for tool in tools.tools))
        due = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
        created = await client.call_tool(
            "create_task",
            {
                "title": "Call the dentist",
                "due_at": due.isoformat(),
                "reminders": [{"before": "PT30M"}],
                "idempotency_key": f"example-{due.isoformat()}",
            },
        )
        if created.is_error:
            raise SystemExit(f"create_task failed: {created.content}")
        task = created.structured_content or {}
        print(f"created {task['id']}: {task['title']} due {task['due_at']}")
        page = await client.call_tool("list_tasks", {"limit": 20})
        for item in (page.structured_content or {}).get("items", []):
            print(f"- {item['title']} [{item['status']}] due {item['due_at']} v{item['version']}")
        upcoming = await client.call_tool("upcoming_reminders", {})
        for reminder in (upcoming.structured_content or {}).get("items", []):
            print(f"reminder {reminder['kind']} at {reminder['remind_at']}: {reminder['title']}")


if __name__ == "__main__":
    asyncio.run(main())
