"""Output shapes of the tools that do not return a task (JSON schemas for `outputSchema`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Deleted(BaseModel):
    deleted: Literal[True]
    task_id: uuid.UUID


class UpcomingReminder(BaseModel):
    task_id: uuid.UUID
    title: str
    remind_at: datetime
    kind: Literal["before", "at", "due", "snooze"]
    due_at: datetime | None


class Upcoming(BaseModel):
    items: list[UpcomingReminder]
    until: datetime


DELETED_SCHEMA = Deleted.model_json_schema()
UPCOMING_SCHEMA = Upcoming.model_json_schema()
