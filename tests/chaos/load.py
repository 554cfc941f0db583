"""The load generator: two users changing tasks at a steady rate over REST, each with a
WebSocket feed, recording every change the API accepted (2xx) and every one left unknown.

Writes carry an `Idempotency-Key` and are retried with it through a fault, so a retry is
never a second change. A write that never got a 2xx is "uncertain": it may or may not have
committed; the task is re-read before it is touched again, and the oracle accepts (but
does not require) its effects.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.chaos.feed import Feed

# Timed tasks are due this many seconds ahead, with a reminder 2 s before the due time
# (and one at it), so reminders keep firing during the run. They are never changed again:
# a later change racing a delayed event would make the expected reminders ambiguous.
TIMED_DUE = (4, 8)
BEFORE = timedelta(seconds=2)
RETRY_FOR = 10.0  # seconds a write is retried (same Idempotency-Key) before it is uncertain


@dataclass(frozen=True, slots=True)
class Change:
    """A change the API accepted: the task's version after it, and the event it must emit."""

    user: str
    task_id: str
    version: int
    type: str
    at: float  # time.time() of the 2xx (compared with database timestamps)
    due_at: datetime | None = None  # set for timed tasks: their reminders must fire
    # The server's `updated_at` of a timed task: reminders before it are never armed (a
    # retried create may commit seconds after its body chose the due time).
    written_at: datetime | None = None


@dataclass
class TaskView:
    version: int
    status: str = "open"
    timed: bool = False
    needs_sync: bool = False


@dataclass
class User:
    name: str
    token: str
    http: httpx.AsyncClient
    feed: Feed
    rng: random.Random
    tasks: dict[str, TaskView] = field(default_factory=dict)
    counter: int = 0


@dataclass
class Ledger:
    """What the load did, for the oracle."""

    changes: list[Change] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)  # task id -> change attempts
    uncertain_creates: Counter[str] = field(default_factory=Counter)  # user -> count
    uncertain: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # "503", "ConnectError", ...

    def accepted_before(self, cut: float) -> list[Change]:
        return [c for c in self.changes if c.at <= cut]


class Outcome(Exception):
    """A write that ended without a 2xx (uncertain) or with a 4xx (refused)."""


class Load:
    """Two users at `rate` changes/s in total; `run` until `stop` is set."""

    def __init__(self, task_url: str, users: list[User], rate: float, seed: int = 7) -> None:
        self.task_url = task_url
        self.users = users
        self.rate = rate
        self.ledger = Ledger()
        self.rng = random.Random(seed)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._user_loop(u, stop) for u in self.users))

    async def _user_loop(self, user: User, stop: asyncio.Event) -> None:
        interval = len(self.users) / self.rate
        next_at = time.monotonic()
        while not stop.is_set():
            await self.step(user, stop)
            # A steady rate: a slow answer (a fault) does not cause a burst afterwards.
            next_at = max(next_at + interval, time.monotonic())
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
            except TimeoutError:
                pass

    async def step(self, user: User, stop: asyncio.Event) -> None:
        for task_id, view in list(user.tasks.items()):
            if view.needs_sync:
                await self._sync(user, task_id)
        far_open = [t for t, v in user.tasks.items() if not v.timed and v.status == "open"]
        far_done = [t for t, v in user.tasks.items() if not v.timed and v.status == "completed"]
        roll = user.rng.random()
        if roll < 0.25 or not far_open:
            await self.create(user, stop, timed=False)
        elif roll < 0.40:
            await self.create(user, stop, timed=True)
        elif roll < 0.60:
            await self._update(user, stop, user.rng.choice(far_open))
        elif roll < 0.72:
            await self._move_due(user, stop, user.rng.choice(far_open))
        elif roll < 0.82:
            await self._complete(user, stop, user.rng.choice(far_open))
        elif roll < 0.87 and far_done:
            await self._reopen(user, stop, user.rng.choice(far_done))
        elif roll < 0.95:
            await self._delete(user, stop, user.rng.choice(far_open + far_done))
        else:
            await self._snooze(user, stop, user.rng.choice(far_open))

    # ---- operations

    async def create(
        self, user: User, stop: asyncio.Event, *, timed: bool, due_in: timedelta | None = None
    ) -> str | None:
        """Create a task: timed (reminders during the run) or not (due in days, or never)."""
        user.counter += 1
        now = datetime.now(UTC).replace(microsecond=0)
        body: dict[str, Any] = {
            "title": f"{user.name} {'timed' if timed else 'task'} {user.counter}",
            "priority": user.rng.choice(["low", "medium", "high"]),
            "tags": [f"chaos{user.counter % 5}"],
        }
        if timed:
            body["due_at"] = (now + timedelta(seconds=user.rng.randint(*TIMED_DUE))).isoformat()
            body["reminders"] = [{"before": "PT2S"}]
        elif due_in is not None:
            body["due_at"] = (now + due_in).isoformat()
        elif user.rng.random() < 0.6:
            body["due_at"] = (now + timedelta(days=user.rng.randint(1, 30))).isoformat()
        try:
            reply = await self._write(user, stop, "POST", "/api/v1/tasks", body)
        except Outcome:
            self.ledger.uncertain_creates[user.name] += 1
            return None
        task = reply.json()
        user.tasks[task["id"]] = TaskView(task["version"], timed=timed)
        self.ledger.attempts[task["id"]] += 1
        due = datetime.fromisoformat(task["due_at"]) if timed else None
        written = datetime.fromisoformat(task["updated_at"]) if timed else None
        self._accept(user, task["id"], task["version"], "task.created", due, written)
        return str(task["id"])

    async def _update(self, user: User, stop: asyncio.Event, task_id: str) -> None:
        user.counter += 1
        body = {"title": f"{user.name} task edited {user.counter}"}
        await self._change(user, stop, task_id, "PATCH", "", body, "task.updated")

    async def _move_due(self, user: User, stop: asyncio.Event, task_id: str) -> None:
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(
            days=user.rng.randint(1, 30), seconds=user.rng.randint(1, 86399)
        )
        body = {"due_at": due.isoformat()}
        await self._change(user, stop, task_id, "PATCH", "", body, "task.updated")

    async def _complete(self, user: User, stop: asyncio.Event, task_id: str) -> None:
        await self._change(user, stop, task_id, "POST", "/complete", None, "task.completed")

    async def _reopen(self, user: User, stop: asyncio.Event, task_id: str) -> None:
        await self._change(user, stop, task_id, "POST", "/reopen", None, "task.reopened")

    async def _snooze(self, user: User, stop: asyncio.Event, task_id: str) -> None:
        await self._change(user, stop, task_id, "POST", "/snooze", {"for": "PT1H"}, "task.snoozed")

    async def _delete(self, user: User, stop: asyncio.Event, task_id: str) -> None:
        await self._change(user, stop, task_id, "DELETE", "", None, "task.deleted")

    async def _change(
        self,
        user: User,
        stop: asyncio.Event,
        task_id: str,
        method: str,
        suffix: str,
        body: dict[str, Any] | None,
        event_type: str,
    ) -> None:
        view = user.tasks[task_id]
        self.ledger.attempts[task_id] += 1
        try:
            reply = await self._write(user, stop, method, f"/api/v1/tasks/{task_id}{suffix}", body)
        except Outcome:
            view.needs_sync = True
            return
        if event_type == "task.deleted":
            del user.tasks[task_id]
            version = view.version + 1
        else:
            task = reply.json()
            version, view.status = task["version"], task["status"]
        view.version = version
        self._accept(user, task_id, version, event_type)

    def _accept(
        self,
        user: User,
        task_id: str,
        version: int,
        event_type: str,
        due: datetime | None = None,
        written: datetime | None = None,
    ) -> None:
        self.ledger.changes.append(
            Change(user.name, task_id, version, event_type, time.time(), due, written)
        )

    async def _write(
        self, user: User, stop: asyncio.Event, method: str, path: str, body: dict[str, Any] | None
    ) -> httpx.Response:
        """Send until a 2xx (returned), a 4xx (refused) or `RETRY_FOR` s (uncertain)."""
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        deadline = time.monotonic() + RETRY_FOR
        delay = 0.1
        while True:
            try:
                reply = await user.http.request(
                    method, self.task_url + path, json=body, headers=headers
                )
            except httpx.HTTPError as exc:
                self.ledger.failures[type(exc).__name__] += 1
            else:
                if reply.is_success:
                    return reply
                self.ledger.failures[str(reply.status_code)] += 1
                # 429 (rate limit) and a 409 for a key still being processed are retried.
                retry = reply.status_code >= 500 or reply.status_code in (408, 409, 429)
                if not retry:
                    self.ledger.uncertain += 1
                    raise Outcome(f"{reply.status_code}: {reply.text[:200]}")
            if time.monotonic() > deadline or stop.is_set():
                self.ledger.uncertain += 1
                raise Outcome("no 2xx before the retry deadline")
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)

    async def _sync(self, user: User, task_id: str) -> None:
        """After an uncertain write: learn the task's state before touching it again."""
        try:
            reply = await user.http.get(f"{self.task_url}/api/v1/tasks/{task_id}")
        except httpx.HTTPError:
            return
        if reply.status_code == 404:
            del user.tasks[task_id]
        elif reply.is_success:
            task = reply.json()
            user.tasks[task_id] = TaskView(
                task["version"], task["status"], user.tasks[task_id].timed
            )
