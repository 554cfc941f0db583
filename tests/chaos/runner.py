"""One chaos session: the system, the load on its own event loop thread, and for each fault
the same cycle: do it, measure recovery, let the load run, ask the oracle."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from tests.chaos.feed import Feed, follow
from tests.chaos.harness import ChaosSystem
from tests.chaos.load import Load, User
from tests.chaos.oracle import REMINDER_SLACK, Issue, Verdict, settle

T = TypeVar("T")
LOAD_USERS = ("alice", "bob")
PROBE_USER = "pat"
WARM_UP = 8.0  # seconds of load before the first fault (timed tasks are due 4-8 s ahead)


class ChaosSettings(BaseSettings):
    """`CHAOS_*`: the short CI run by default; `CHAOS_FULL=1` for a longer, heavier one."""

    model_config = SettingsConfigDict(env_prefix="CHAOS_", extra="ignore")

    full: bool = False
    rate: float = 0.0  # changes/s for both users together; 0: 10 (short) or 16 (full)
    settle: float = 0.0  # seconds of load after recovery, before the cut; 0: 3 or 30
    freeze: float = 30.0  # seconds the broker stays frozen (the issue's 30 s)
    recovery_timeout: float = 180.0
    oracle_timeout: float = 60.0
    keep: bool = False  # keep the data dir (databases, recovery, logs) to look into

    def load_rate(self) -> float:
        return self.rate or (16.0 if self.full else 10.0)

    def settle_for(self) -> float:
        return self.settle or (30.0 if self.full else 3.0)


class LoopThread:
    """An asyncio loop on its own thread, so the load keeps running while a test blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="chaos-load", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the loop thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Result:
    """One fault's line: accepted changes in its window, new issues, recovery time."""

    fault: str
    accepted: int
    lost: int
    duplicated: int
    unexpected: int
    recovery_s: float
    duration_s: float
    details: dict[str, Any] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)

    def line(self) -> dict[str, Any]:
        data = {
            "fault": self.fault,
            "accepted": self.accepted,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "unexpected": self.unexpected,
            "recovery_s": round(self.recovery_s, 2),
            "duration_s": round(self.duration_s, 1),
        }
        return data | self.details | ({"issues": self.issues[:20]} if self.issues else {})


FaultAction = Callable[["Chaos"], dict[str, Any]]


class Chaos:
    def __init__(self, system: ChaosSystem, settings: ChaosSettings) -> None:
        self.system = system
        self.settings = settings
        self.thread = LoopThread()
        self.stop = asyncio.Event()
        self.feeds: list[Feed] = []
        self.background: list[asyncio.Task[Any]] = []
        self.reported: set[Issue] = set()
        self._probe: dict[str, bool] = {}  # what the last recovery probe reached
        self.last_cut = time.time()
        self.load: Load
        self.probe_user: User

    # ---- life cycle

    def start(self) -> None:
        self.system.start()
        tokens = {u: self.system.token(u) for u in (*LOAD_USERS, PROBE_USER)}
        self.thread.run(self._start(tokens), timeout=30)
        # Baseline: the system works end to end before any fault, and the load has run
        # long enough for timed tasks' reminders to be pending when the first fault hits.
        self.thread.run(self.recover(time.monotonic()), timeout=self.settings.recovery_timeout)
        time.sleep(WARM_UP)
        self.last_cut = time.time()

    async def _start(self, tokens: dict[str, str]) -> None:
        hub = self.system.url("notify")
        users = []
        for seed, name in enumerate((*LOAD_USERS, PROBE_USER)):
            http = httpx.AsyncClient(
                headers={"Authorization": f"Bearer {tokens[name]}"}, timeout=5.0
            )
            feed = Feed(name)
            self.feeds.append(feed)
            users.append(User(name, tokens[name], http, feed, random.Random(seed)))
            self.background.append(asyncio.create_task(follow(hub, tokens[name], feed, self.stop)))
        self.probe_user = users[-1]
        self.load = Load(self.system.url("task-api"), users[:-1], self.settings.load_rate())
        self.background.append(asyncio.create_task(self.load.run(self.stop)))

    def close(self) -> None:
        self.thread.loop.call_soon_threadsafe(self.stop.set)
        try:
            self.thread.run(self._close(), timeout=30)
        finally:
            self.thread.close()

    async def _close(self) -> None:
        await asyncio.gather(*self.background, return_exceptions=True)
        for user in (*self.load.users, self.probe_user):
            await user.http.aclose()

    def check_background(self) -> None:
        self.thread.run(self._check_background(), timeout=10)

    async def _check_background(self) -> None:
        for task in self.background:
            if task.done() and task.exception() is not None:
                raise AssertionError(f"the load or a feed died: {task.exception()!r}")

    # ---- recovery: every /readyz green, then a change flows end to end

    async def recover(self, fault_end: float) -> float:
        """Seconds from `fault_end` until every service is ready and a probe change has
        reached the probe user's WebSocket, the audit store and the reminder read model."""
        deadline = fault_end + self.settings.recovery_timeout
        async with httpx.AsyncClient() as client:
            while True:
                await self._check_background()
                failing = await self.system.not_ready(client)
                if not failing:
                    task_id = await self.load.create(
                        self.probe_user, self.stop, timed=False, due_in=timedelta(days=1)
                    )
                    if task_id is not None and await self._flowed(task_id, deadline):
                        return time.monotonic() - fault_end
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no recovery: not ready {failing}; last probe reached {self._probe}"
                    )
                await asyncio.sleep(0.2)

    async def _flowed(self, task_id: str, deadline: float) -> bool:
        feed = self.feeds[-1]
        until = min(deadline, time.monotonic() + 30)
        while time.monotonic() < until:
            seen = bool(feed.for_task(task_id))
            if seen and await self._stored(task_id):
                return True
            self._probe["websocket"] = seen
            await asyncio.sleep(0.1)
        return False

    async def _stored(self, task_id: str) -> bool:
        try:
            audit = await _value(
                self.system.database_url("taskflow_audit"),
                "SELECT count(*) FROM audit_entries WHERE task_id = $1",
                task_id,
            )
            scheduled = await _value(
                self.system.database_url("taskflow_reminders"),
                "SELECT count(*) FROM scheduled_reminder WHERE task_id = $1::uuid",
                task_id,
            )
        except (OSError, asyncpg.PostgresError):
            return False
        self._probe |= {"audit": bool(audit), "reminder read model": bool(scheduled)}
        return bool(audit) and bool(scheduled)

    # ---- one fault

    def fault(
        self, name: str, action: FaultAction, extra: Callable[[Verdict], None] | None = None
    ) -> Result:
        """Do `action` (it returns details, with "end": the monotonic time the fault ended),
        measure recovery, let the load run, then judge everything accepted so far."""
        self.check_background()
        began = time.monotonic()
        window_start = self.last_cut
        details = action(self)
        end = details.pop("end")
        recovery = self.thread.run(self.recover(end), timeout=self.settings.recovery_timeout + 10)
        # The steady load runs on (nothing is awaited). The cut comes late enough that the
        # reminders due when the fault hit are judged in this round, not the next.
        judged_from = end + REMINDER_SLACK + 2
        time.sleep(max(self.settings.settle_for(), judged_from - time.monotonic()))
        cut = time.time()
        known = frozenset(self.reported)
        verdict = self.thread.run(
            settle(
                self.system, self.load.ledger, self.feeds, cut, self.settings.oracle_timeout, known
            ),
            timeout=self.settings.oracle_timeout + 60,
        )
        if extra is not None:
            extra(verdict)
        self.last_cut = cut
        self.check_background()
        return self.thread.run(
            self._result(name, verdict, window_start, cut, recovery, began, details), timeout=10
        )

    async def _result(
        self,
        name: str,
        verdict: Verdict,
        window_start: float,
        cut: float,
        recovery: float,
        began: float,
        details: dict[str, Any],
    ) -> Result:
        groups = {"lost": verdict.lost, "duplicated": verdict.duplicated}
        groups["unexpected"] = verdict.unexpected
        new = {key: issues - self.reported for key, issues in groups.items()}
        for issues in new.values():
            self.reported |= issues
        ledger = self.load.ledger
        accepted = sum(1 for c in ledger.changes if window_start < c.at <= cut)
        details = details | {
            "accepted_total": verdict.stats.get("accepted", 0),
            "reminders_checked": verdict.stats.get("reminders", 0),
            "uncertain": ledger.uncertain,
            "http_failures": dict(ledger.failures),
        }
        return Result(
            name,
            accepted,
            len(new["lost"]),
            len(new["duplicated"]),
            len(new["unexpected"]),
            recovery,
            time.monotonic() - began,
            details
            | {k: v for k, v in verdict.stats.items() if k.startswith(("ws_", "dlq", "poison"))},
            sorted(f"{key}: {issue}" for key, issues in new.items() for issue in issues),
        )


async def _value(url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetchval(sql, *args, timeout=5)
    finally:
        await conn.close()
