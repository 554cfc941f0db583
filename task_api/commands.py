"""Commands the task use cases take: plain, already-validated values, free of any transport.

The REST routes and the MCP tools both translate their (validated) input into these.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.payloads import Priority, ReminderSpec, TaskStatus

# The fields a caller may set on a task.
WRITABLE = (
    "title",
    "description",
    "due_at",
    "timezone",
    "priority",
    "tags",
    "reminders",
    "recurrence",
)


@dataclass(frozen=True, slots=True)
class CreateTask:
    title: str
    description: str | None = None
    due_at: datetime | None = None
    timezone: str = "UTC"
    priority: Priority = "medium"
    tags: tuple[str, ...] = ()
    reminders: tuple[ReminderSpec, ...] = ()
    recurrence: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateTask:
    """Set the writable fields named in `changes`; fields not named stay as they are."""

    task_id: uuid.UUID
    changes: Mapping[str, Any]
    expected_version: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.changes) - set(WRITABLE)
        if unknown:
            raise ValueError(f"not writable: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which of the user's tasks to list, and where the page starts."""

    status: TaskStatus | None = "open"  # None: any status
    tag: str | None = None
    text: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    priority: Priority | None = None
    limit: int = 50
    cursor: str | None = None
