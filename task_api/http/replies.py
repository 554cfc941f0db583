"""Response building shared by the task routes: JSON bodies, ETag, Location."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from quart import Response

from task_api.db.models import Task
from task_api.services import snapshot


@dataclass(frozen=True, slots=True)
class Reply:
    """A response as data, so an idempotent request can store and replay it exactly."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def to_response(self) -> Response:
        return Response(self.body, status=self.status, headers=self.headers)


def task_json(task: Task) -> bytes:
    return orjson.dumps(snapshot(task).model_dump(mode="json", exclude={"user_id"}))


def etag(version: int) -> str:
    return f'"{version}"'


def task_reply(task: Task, status: int = 200, location: bool = False) -> Reply:
    headers = {"Content-Type": "application/json", "ETag": etag(task.version)}
    if location:
        headers["Location"] = f"/api/v1/tasks/{task.id}"
    return Reply(status, task_json(task), headers)


def parse_if_match(value: str | None) -> int | None:
    """The version an `If-Match` asks for; None for absent or `*`; -1 never matches."""
    if value is None or value.strip() == "*":
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() else -1
