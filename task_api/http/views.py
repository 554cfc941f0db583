"""Response shapes, for the OpenAPI document (handlers serialise with orjson directly)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from events.payloads import Priority, ReminderSpec, TaskStatus


class TaskOut(BaseModel):
    id: uuid.UUID
    title: str
    description: str | None
    due_at: datetime | None
    timezone: str
    priority: Priority
    tags: list[str]
    reminders: list[ReminderSpec]
    recurrence: str | None
    status: TaskStatus
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    snoozed_until: datetime | None
    version: int


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None
