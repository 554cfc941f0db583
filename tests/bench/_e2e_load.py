"""The e2e bench's load: task changes (creates, completes, reminder tasks) sent over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson


@dataclass
class Change:
    kind: str  # "task.created" | "task.completed"
    scheduled: float
    sent: float = 0.0
    done: float = 0.0
    status: int = 0  # -1: no answer (connection error, or none within 30 s)
    task_id: str = ""
    due: float | None = None  # reminder tasks: the due time (= remind time)


@dataclass
class Load:
    session: aiohttp.ClientSession
    task_url: str
    tokens: list[str]  # `users` change users, then the reminder users
    users: int
    reminder_spacing: float  # seconds between reminder tasks (see `reminder_plan`)
    reminder_lead: float
    complete_share: float
    counter: int = 0
    reminders: int = 0
    next_reminder: float = 0.0
    completable: deque[tuple[str, int]] = field(default_factory=deque)  # (task id, user)

    async def send(self, change: Change, user: int, path: str, body: dict[str, Any]) -> None:
        headers = {
            "Authorization": f"Bearer {self.tokens[user]}",
            "Content-Type": "application/json",
        }
        change.sent = time.time()
        try:
            async with self.session.post(
                self.task_url + path, data=orjson.dumps(body), headers=headers
            ) as response:
                change.status = response.status
                data = orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError):
            change.status = -1
            return
        finally:
            change.done = time.time()
        if change.status in (200, 201):
            change.task_id = str(data["id"])
            if change.due is not None:
                change.due = datetime.fromisoformat(data["due_at"]).timestamp()
            elif change.kind == "task.created":
                self.completable.append((change.task_id, user))

    def start(self, scheduled: float) -> tuple[Change, asyncio.Task[None]]:
        """Start the next change now (its scheduled time is given)."""
        self.counter += 1
        n = self.counter
        every = round(1 / self.complete_share) if self.complete_share > 0 else 0
        if scheduled >= self.next_reminder and len(self.tokens) > self.users:
            # A reminder user each time, in turn: see `reminder_plan`.
            self.next_reminder = max(self.next_reminder, scheduled) + self.reminder_spacing
            self.reminders += 1
            user = self.users + self.reminders % (len(self.tokens) - self.users)
            due = datetime.fromtimestamp(scheduled + self.reminder_lead, UTC)
            body: dict[str, Any] = {"title": f"bench reminder {n}", "due_at": due.isoformat()}
            change = Change("task.created", scheduled, due=due.timestamp())
            coro = self.send(change, user, "/api/v1/tasks", body)
        elif every and n % every == 1 and self.completable:
            task_id, user = self.completable.popleft()
            change = Change("task.completed", scheduled)
            coro = self.send(change, user, f"/api/v1/tasks/{task_id}/complete", {})
            change.task_id = task_id
        else:
            user = n % self.users
            body = {"title": f"bench change {n}", "tags": ["bench"]}
            change = Change("task.created", scheduled)
            coro = self.send(change, user, "/api/v1/tasks", body)
        return change, asyncio.create_task(coro)
