"""Tool arguments: the REST request models, plus what a tool call carries instead of a URL
or a header (`task_id`, `version` for If-Match, `idempotency_key` for Idempotency-Key)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from task_api.http.schemas import (
    SnoozeRequest,
    StrictModel,
    TaskCreate,
    TaskListQuery,
    TaskPatch,
)
from webapi.paging import DEFAULT_LIMIT, MAX_LIMIT

IdempotencyKey = Annotated[str | None, Field(min_length=1, max_length=255)]
ExpectedVersion = Annotated[int | None, Field(ge=0)]


class Keyed(BaseModel):
    """A change that may carry an idempotency key."""

    idempotency_key: IdempotencyKey = None


class OneTask(StrictModel):
    task_id: uuid.UUID


class ChangeOneTask(OneTask, Keyed):
    version: ExpectedVersion = None


class CreateTaskArgs(TaskCreate, Keyed):
    pass


class ListTasksArgs(TaskListQuery):
    model_config = ConfigDict(extra="forbid")


class GetTaskArgs(OneTask):
    pass


class UpdateTaskArgs(TaskPatch, ChangeOneTask):
    pass


class TransitionArgs(ChangeOneTask):
    pass


class SnoozeTaskArgs(SnoozeRequest, ChangeOneTask):
    pass


class UpcomingRemindersArgs(StrictModel):
    until: AwareDatetime | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT


# What each argument means, for the model choosing and filling in a tool call. Kept here,
# not on the REST models, so the REST OpenAPI document stays as it is.
FIELD_DOCS: dict[str, str] = {
    "task_id": "The task's id (a UUID returned by create_task or list_tasks).",
    "version": (
        "Optional: the task's version you last saw. The change is refused if the task has "
        "changed since (someone else edited it); read it again and retry."
    ),
    "idempotency_key": (
        "Optional: any unique string for this change (1-255 chars). Retrying with the same "
        "key returns the first result and changes nothing again. Reusing a key with other "
        "arguments is an error."
    ),
    "title": "Short text of the task, 1-500 characters.",
    "description": "Longer notes, up to 10,000 characters, or null.",
    "due_at": "When the task is due: RFC 3339 with an offset (2026-05-01T09:00:00+02:00).",
    "timezone": "IANA time zone for recurrence and reminders (e.g. Europe/Paris). Default UTC.",
    "priority": "low, medium or high.",
    "tags": "Up to 20 labels of up to 50 characters; duplicates are dropped.",
    "reminders": (
        "Up to 10 reminders, each {'before': ISO 8601 duration before due_at, e.g. PT15M} "
        "(needs due_at) or {'at': RFC 3339 instant}."
    ),
    "recurrence": (
        "RFC 5545 RRULE for a repeating task, e.g. FREQ=WEEKLY;BYDAY=MO (needs due_at), or null."
    ),
    "status": "open (default), completed, or all.",
    "tag": "Only tasks with this tag.",
    "q": "Only tasks whose title or description contains this text (case-insensitive).",
    "due_before": "Only tasks due before this instant.",
    "due_after": "Only tasks due at or after this instant.",
    "limit": "Page size, 1-200 (default 50).",
    "cursor": "next_cursor of the previous page, to get the next one.",
    "until": "Snooze until this instant (RFC 3339); give exactly one of until or for.",
    "for": "Snooze for this ISO 8601 duration from now (e.g. PT1H); one of until or for.",
}
UPCOMING_DOCS = {
    "until": "End of the window (RFC 3339); default 7 days from now.",
    "limit": "At most this many reminders, soonest first, 1-200 (default 50).",
}


def input_schema(model: type[BaseModel], docs: dict[str, str] | None = None) -> dict[str, Any]:
    """The model's JSON schema (by alias, as clients send it) with each field described."""
    schema = model.model_json_schema(by_alias=True)
    notes = {**FIELD_DOCS, **(docs or {})}
    for name, prop in schema.get("properties", {}).items():
        if name in notes:
            prop["description"] = notes[name]
    schema.pop("description", None)
    return schema
