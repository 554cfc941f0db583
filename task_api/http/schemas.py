"""Request and query schemas of the task API (validated by quart-schema, 422 on failure),
and their translation into the use cases' commands."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from events.payloads import Priority, ReminderSpec
from reminders.domain import recurrence
from task_api.commands import WRITABLE, CreateTask, TaskFilter, UpdateTask
from webapi.paging import DEFAULT_LIMIT, MAX_LIMIT

_ISO_DURATION = re.compile(r"^P(?!$)(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
MAX_REMINDER_OFFSET = timedelta(days=366)


def _iso_duration(value: Any) -> Any:
    if not isinstance(value, str) or not _ISO_DURATION.match(value):
        raise ValueError("must be an ISO 8601 duration such as PT15M or P1D")
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


def _rrule(value: str | None) -> str | None:
    """One RFC 5545 RRULE (no DTSTART, no rule sets): the due date anchors it."""
    if value is None:
        return None
    text = value.strip()
    text = text[6:] if text.upper().startswith("RRULE:") else text
    upper = text.upper()
    if "\n" in text or "DTSTART" in upper or not upper.startswith("FREQ="):
        raise ValueError("expected one RFC 5545 RRULE such as FREQ=WEEKLY;BYDAY=MO")
    try:
        recurrence.validate(text)
    except ValueError as exc:
        raise ValueError(f"invalid RRULE: {exc}") from None
    return text


def _title(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _tags(values: list[str]) -> list[str]:
    # Tags are a set to the user; keep first-seen order for stable output.
    return list(dict.fromkeys(values))


IsoDuration = Annotated[timedelta, BeforeValidator(_iso_duration)]
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
RRule = Annotated[str | None, Field(max_length=500), AfterValidator(_rrule)]
Title = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_title)]
Description = Annotated[str | None, Field(max_length=10_000)]
Tag = Annotated[str, Field(min_length=1, max_length=50)]
Tags = Annotated[list[Tag], Field(max_length=20), AfterValidator(_tags)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReminderIn(StrictModel):
    before: IsoDuration | None = None
    at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ReminderIn:
        if (self.before is None) == (self.at is None):
            raise ValueError("a reminder needs exactly one of 'before' or 'at'")
        if self.before is not None and not timedelta(0) <= self.before <= MAX_REMINDER_OFFSET:
            raise ValueError("'before' must be between PT0S and P366D")
        return self

    def to_spec(self) -> ReminderSpec:
        return ReminderSpec(before=self.before, at=self.at)


Reminders = Annotated[list[ReminderIn], Field(max_length=10)]


class TaskCreate(StrictModel):
    title: Title
    description: Description = None
    due_at: AwareDatetime | None = None
    timezone: TimeZoneName = "UTC"
    priority: Priority = "medium"
    tags: Tags = []
    reminders: Reminders = []
    recurrence: RRule = None

    def to_command(self) -> CreateTask:
        return CreateTask(
            title=self.title,
            description=self.description,
            due_at=self.due_at,
            timezone=self.timezone,
            priority=self.priority,
            tags=tuple(self.tags),
            reminders=tuple(r.to_spec() for r in self.reminders),
            recurrence=self.recurrence,
        )


class TaskPatch(StrictModel):
    """Every field optional; only the fields present in the body change."""

    title: Title | None = None
    description: Description = None
    due_at: AwareDatetime | None = None
    timezone: TimeZoneName | None = None
    priority: Priority | None = None
    tags: Tags | None = None
    reminders: Reminders | None = None
    recurrence: RRule = None

    @field_validator("title", "timezone", "priority", "tags", "reminders", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Only runs for fields present in the body: absent means "leave as is".
        if value is None:
            raise ValueError("cannot be null")
        return value

    def to_command(self, task_id: uuid.UUID, expected_version: int | None) -> UpdateTask:
        """The fields present in the body (and only those) become the changes."""
        present = [name for name in WRITABLE if name in self.model_fields_set]
        changes: dict[str, Any] = {name: getattr(self, name) for name in present}
        if self.reminders is not None and "reminders" in changes:
            changes["reminders"] = tuple(r.to_spec() for r in self.reminders)
        if self.tags is not None and "tags" in changes:
            changes["tags"] = tuple(self.tags)
        return UpdateTask(task_id, changes, expected_version)


class SnoozeRequest(StrictModel):
    until: AwareDatetime | None = None
    for_: IsoDuration | None = Field(default=None, alias="for")

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    @model_validator(mode="after")
    def _exactly_one(self) -> SnoozeRequest:
        if (self.until is None) == (self.for_ is None):
            raise ValueError("give exactly one of 'until' or 'for'")
        if self.for_ is not None and self.for_ <= timedelta(0):
            raise ValueError("'for' must be a positive duration")
        return self


class TaskListQuery(BaseModel):
    status: Literal["open", "completed", "all"] = "open"
    tag: Annotated[str | None, Field(max_length=50)] = None
    q: Annotated[str | None, Field(max_length=200)] = None
    due_before: AwareDatetime | None = None
    due_after: AwareDatetime | None = None
    priority: Priority | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str | None, Field(max_length=200)] = None

    def to_filter(self) -> TaskFilter:
        return TaskFilter(
            status=None if self.status == "all" else self.status,
            tag=self.tag,
            text=self.q,
            due_before=self.due_before,
            due_after=self.due_after,
            priority=self.priority,
            limit=self.limit,
            cursor=self.cursor,
        )
