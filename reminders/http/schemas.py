"""Query and response shapes of `GET /api/v1/reminders` (api.md, reminder section)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from reminders.domain.schedule import Kind
from webapi.paging import DEFAULT_LIMIT, MAX_LIMIT

# An unencoded "+" in a query string arrives as a space: "…T10:00:00 01:00".
_SPACE_OFFSET = re.compile(r" (\d{2}:?\d{2})$")


class ReminderQuery(BaseModel):
    """`from`/`to` are RFC 3339 with an offset (`from` defaults to now); keyset paging."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _restore_plus(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _SPACE_OFFSET.sub(r"+\1", value)
        return value


class ReminderItem(BaseModel):
    task_id: uuid.UUID
    remind_at: AwareDatetime
    kind: Kind
    due_at: AwareDatetime | None


class ReminderPage(BaseModel):
    items: list[ReminderItem]
    next_cursor: str | None
