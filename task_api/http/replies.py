"""Response building shared by the task routes: JSON bodies, ETag, Location."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from quart import Response

from events.payloads import TaskState
from task_api.db.models import Task
from task_api.services import snapshot

# Task JSON is the event state minus the owner (the caller is the owner) and any fields
# that only events carry (e.g. `changed`).
TASK_FIELDS: set[str] = set(TaskState.model_fields) - {"user_id"}


@dataclass(frozen=True, slots=True)
class Reply:
    """A response as data, so an idempotent request can store and replay it exactly."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def to_response(self) -> Response:
        return Response(self.body, status=self.status, headers=self.headers)


def task_json(task: Task) -> bytes:
    return state_json(snapshot(task))


def state_json(state: TaskState) -> bytes:
    return orjson.dumps(state.model_dump(mode="json", include=TASK_FIELDS))


def etag(version: int) -> str:
    return f'"{version}"'


def task_reply(task: Task, status: int = 200) -> Reply:
    return state_reply(snapshot(task), status)


def state_reply(state: TaskState, status: int = 200, location: bool = False) -> Reply:
    """The task JSON of `state` with its ETag (and Location for a create)."""
    headers = {"Content-Type": "application/json", "ETag": etag(state.version)}
    if location:
        headers["Location"] = f"/api/v1/tasks/{state.id}"
    return Reply(status, state_json(state), headers)


def parse_if_match(value: str | None) -> int | None:
    """The version an `If-Match` asks for; None for absent or `*`; -1 never matches."""
    if value is None or value.strip() == "*":
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() else -1
