"""The MCP tools: each one's description, argument model, output schema, annotations, and the
use case it runs (the same ones as REST, inside the transaction `calls.py` opens)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mcp_types import ToolAnnotations
from pydantic import BaseModel
from tortoise.backends.base.client import BaseDBAsyncClient

from events.payloads import TaskState
from reminders.domain.schedule import TaskSpec, plan
from task_api import queries, services
from task_api.commands import TaskFilter
from task_api.context import TaskContext
from task_api.db.models import Task
from task_api.http.replies import TASK_FIELDS
from task_api.http.views import TaskOut, TaskPage
from task_api.mcp.arguments import (
    UPCOMING_DOCS,
    CreateTaskArgs,
    GetTaskArgs,
    ListTasksArgs,
    SnoozeTaskArgs,
    TransitionArgs,
    UpcomingRemindersArgs,
    UpdateTaskArgs,
    input_schema,
)
from task_api.mcp.outputs import DELETED_SCHEMA, UPCOMING_SCHEMA

UPCOMING_WINDOW = timedelta(days=7)
# upcoming_reminders plans from at most this many of the user's open tasks (oldest first).
UPCOMING_SCAN = 1000


@dataclass(frozen=True, slots=True)
class Call:
    """Who calls, with what the composition root provides."""

    user_id: str
    ctx: TaskContext


Run = Callable[[BaseDBAsyncClient, Call, Any], Awaitable[dict[str, Any]]]
Transition = Callable[
    [BaseDBAsyncClient, services.EventSink, str, uuid.UUID, int | None, datetime],
    Awaitable[Task],
]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    title: str
    description: str
    args: type[BaseModel]
    output_schema: dict[str, Any]
    annotations: ToolAnnotations
    run: Run
    writes: bool
    docs: dict[str, str] | None = None

    def input_schema(self) -> dict[str, Any]:
        return input_schema(self.args, self.docs)


def task_dict(state: TaskState) -> dict[str, Any]:
    return state.model_dump(mode="json", include=TASK_FIELDS)


def row_dict(task: Task) -> dict[str, Any]:
    return task_dict(services.snapshot(task))


async def create_task(conn: BaseDBAsyncClient, call: Call, args: CreateTaskArgs) -> dict[str, Any]:
    ctx = call.ctx
    state = await services.create_task(conn, ctx.sink, call.user_id, args.to_command(), ctx.clock())
    return task_dict(state)


async def list_tasks(conn: BaseDBAsyncClient, call: Call, args: ListTasksArgs) -> dict[str, Any]:
    page, next_cursor = await queries.list_tasks(conn, call.user_id, args.to_filter())
    return {"items": [row_dict(task) for task in page], "next_cursor": next_cursor}


async def get_task(conn: BaseDBAsyncClient, call: Call, args: GetTaskArgs) -> dict[str, Any]:
    return row_dict(await services.get_task(conn, call.user_id, args.task_id))


async def update_task(conn: BaseDBAsyncClient, call: Call, args: UpdateTaskArgs) -> dict[str, Any]:
    command = args.to_command(args.task_id, args.version)
    task = await services.update_task(conn, call.ctx.sink, call.user_id, command, call.ctx.clock())
    return row_dict(task)


def transition(change: Transition) -> Run:
    async def run(conn: BaseDBAsyncClient, call: Call, args: TransitionArgs) -> dict[str, Any]:
        ctx = call.ctx
        task = await change(conn, ctx.sink, call.user_id, args.task_id, args.version, ctx.clock())
        return row_dict(task)

    return run


async def snooze_task(conn: BaseDBAsyncClient, call: Call, args: SnoozeTaskArgs) -> dict[str, Any]:
    ctx = call.ctx
    task = await services.snooze_task(
        conn, ctx.sink, call.user_id, args.task_id, args.until, args.for_, args.version, ctx.clock()
    )
    return row_dict(task)


async def delete_task(conn: BaseDBAsyncClient, call: Call, args: TransitionArgs) -> dict[str, Any]:
    ctx = call.ctx
    await services.delete_task(
        conn, ctx.sink, call.user_id, args.task_id, args.version, ctx.clock()
    )
    return {"deleted": True, "task_id": str(args.task_id)}


async def upcoming_reminders(
    conn: BaseDBAsyncClient, call: Call, args: UpcomingRemindersArgs
) -> dict[str, Any]:
    """The user's reminders in (now, until], as the reminder service schedules them."""
    now = call.ctx.clock()
    until = args.until or now + UPCOMING_WINDOW
    tasks = await queries.list_tasks(conn, call.user_id, TaskFilter(limit=UPCOMING_SCAN))
    items: list[tuple[datetime, dict[str, Any]]] = []
    for task in tasks[0]:
        state = services.snapshot(task)
        for reminder in plan(TaskSpec.from_task(state), now):
            if reminder.at > until:
                break
            due = reminder.due_at.isoformat() if reminder.due_at else None
            item = {
                "task_id": str(task.id),
                "title": task.title,
                "remind_at": reminder.at.isoformat(),
                "kind": reminder.kind,
                "due_at": due,
            }
            items.append((reminder.at, item))
    items.sort(key=lambda pair: pair[0])
    return {"items": [item for _, item in items[: args.limit]], "until": until.isoformat()}


TASK_SCHEMA = TaskOut.model_json_schema()
PAGE_SCHEMA = TaskPage.model_json_schema()
READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def _change(*, destructive: bool, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=False,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


_VERSION_NOTE = (
    " Pass `version` (from the task you read) to refuse the change if the task changed since."
    " Pass `idempotency_key` to make a retry safe."
)

TOOLS: tuple[Tool, ...] = (
    Tool(
        "create_task",
        "Create a task",
        "Create a new task (todo item) for the user. Use when the user asks to add, note or "
        "remember something to do. Only `title` is required; set `due_at` with an offset and "
        "`timezone` when the user gives a time, `reminders` to be reminded before it, "
        "`recurrence` for repeating tasks. Returns the created task with its id and version."
        " Pass `idempotency_key` to make a retry safe (no duplicate task).",
        CreateTaskArgs,
        TASK_SCHEMA,
        _change(destructive=False, idempotent=False),
        create_task,
        writes=True,
    ),
    Tool(
        "list_tasks",
        "List tasks",
        "List the user's tasks, oldest first, one page at a time. Defaults to open tasks; "
        "filter by status, tag, text (`q`), due window (`due_before`, `due_after`) and "
        "priority. When `next_cursor` is not null, call again with it as `cursor` for more. "
        "Use to find a task's id before changing it.",
        ListTasksArgs,
        PAGE_SCHEMA,
        READ,
        list_tasks,
        writes=False,
    ),
    Tool(
        "get_task",
        "Get a task",
        "Read one of the user's tasks by id, with its current version.",
        GetTaskArgs,
        TASK_SCHEMA,
        READ,
        get_task,
        writes=False,
    ),
    Tool(
        "update_task",
        "Update a task",
        "Change some fields of a task: give `task_id` and only the fields to change (absent "
        "fields stay as they are; null clears description, due_at or recurrence). Changing "
        "due_at or reminders cancels a snooze." + _VERSION_NOTE,
        UpdateTaskArgs,
        TASK_SCHEMA,
        _change(destructive=True, idempotent=True),
        update_task,
        writes=True,
    ),
    Tool(
        "complete_task",
        "Complete a task",
        "Mark a task done. A recurring task is not closed: its due_at moves to the next "
        "occurrence and it stays open (so calling twice skips two occurrences)." + _VERSION_NOTE,
        TransitionArgs,
        TASK_SCHEMA,
        _change(destructive=False, idempotent=False),
        transition(services.complete_task),
        writes=True,
    ),
    Tool(
        "reopen_task",
        "Reopen a task",
        "Reopen a completed task (status back to open)." + _VERSION_NOTE,
        TransitionArgs,
        TASK_SCHEMA,
        _change(destructive=False, idempotent=True),
        transition(services.reopen_task),
        writes=True,
    ),
    Tool(
        "snooze_task",
        "Snooze a task's reminder",
        "Postpone the task's next reminder: `until` an instant, or `for` a duration from now "
        "(exactly one). Reminders before that time are skipped; one fires then." + _VERSION_NOTE,
        SnoozeTaskArgs,
        TASK_SCHEMA,
        _change(destructive=False, idempotent=False),
        snooze_task,
        writes=True,
    ),
    Tool(
        "delete_task",
        "Delete a task",
        "Delete a task for good (it cannot be restored). Prefer complete_task when the user "
        "finished it; delete only when they ask to remove it." + _VERSION_NOTE,
        TransitionArgs,
        DELETED_SCHEMA,
        _change(destructive=True, idempotent=True),
        delete_task,
        writes=True,
    ),
    Tool(
        "upcoming_reminders",
        "Upcoming reminders",
        "The user's reminders due between now and `until` (default: the next 7 days), "
        "soonest first, computed from their open tasks' due dates, reminder rules, "
        "recurrence and snoozes. Use to answer 'what will you remind me of?'.",
        UpcomingRemindersArgs,
        UPCOMING_SCHEMA,
        READ,
        upcoming_reminders,
        writes=False,
        docs=UPCOMING_DOCS,
    ),
)
BY_NAME = {tool.name: tool for tool in TOOLS}
