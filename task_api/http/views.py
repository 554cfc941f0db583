"""Response shapes, for the OpenAPI document (handlers serialise with orjson directly)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

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


class ErasureAccepted(BaseModel):
    """202 to an erasure: the task service's part is done; the other services follow the
    `user.erased` event. `status` is the path of the erasure status on the audit service
    (port 8003 locally), which shows each service's progress."""

    erasure_id: uuid.UUID
    user_id: str
    requested_at: datetime
    status: str
    status_service: Literal["audit"] = "audit"


class ErasureRef(BaseModel):
    erasure_id: uuid.UUID
    requested_at: datetime


class TaskExport(BaseModel):
    """`GET /api/v1/me/export`: every task of the caller, oldest first (portability)."""

    format: Literal["taskflow.tasks.export/v1"]
    service: Literal["tasks"]
    user_id: str
    exported_at: datetime
    tasks: list[TaskOut]
    erasure: ErasureRef | None
