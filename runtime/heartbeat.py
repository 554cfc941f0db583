"""Heartbeats of a process's background loops, for liveness: each loop calls `beat()` once
per round; liveness fails, naming the loop, when one has been silent longer than it may be
or its task ended while the process was not stopping.

A loop started with `Heartbeats.spawn(name, coro)` beats with the module's `beat()` (its
task's heartbeat travels in a context variable, so the loop needs no extra parameter).
A heartbeat is armed by `watch(task)` or its first `beat()`; an unarmed one (a loop this
process does not run, a flow partition that has not been polled yet) is not judged.
`Heartbeat.beat()` is one store of a float, safe from any thread (Bytewax workers).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any

Monotonic = Callable[[], float]


class Heartbeat:
    """One loop's heartbeat: `beat()` every round; silent longer than `max_silence` is stuck
    (None: an event-driven loop with no rounds, judged only by whether its task ended)."""

    def __init__(self, name: str, max_silence: timedelta | None, clock: Monotonic) -> None:
        if max_silence is not None and max_silence <= timedelta(0):
            raise ValueError(f"heartbeat {name!r}: max_silence must be positive")
        self.name = name
        self.max_silence = max_silence
        self._clock = clock
        self._last: float | None = None
        self._ended: str | None = None
        self._stopping = False

    def beat(self) -> None:
        """The loop made a round (or a bounded step of one)."""
        self._last = self._clock()

    def watch(self, task: asyncio.Task[None]) -> None:
        """Arm now and report the loop dead if `task` ends before `stop()`."""
        self._ended, self._stopping = None, False
        self.beat()
        task.add_done_callback(self._task_done)

    def stop(self) -> None:
        """The process is shutting down: the loop's end is expected, judge it no more."""
        self._stopping = True

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            self._ended = "cancelled"
        elif (exc := task.exception()) is not None:
            self._ended = f"died ({type(exc).__name__}: {exc})"
        else:
            self._ended = "returned"

    def problem(self) -> str | None:
        """Why this loop is not live, or None when it is (or is not judged)."""
        if self._stopping or self._last is None:
            return None
        if self._ended is not None:
            return self._ended
        if self.max_silence is None:
            return None
        silent = self._clock() - self._last
        allowed = self.max_silence.total_seconds()
        if silent > allowed:
            return f"silent for {silent:.1f} s (allowed {allowed:g} s)"
        return None


class Heartbeats:
    """The heartbeats of one process, judged together by its liveness probe."""

    def __init__(self, clock: Monotonic = time.monotonic) -> None:
        self._clock = clock
        self._beats: dict[str, Heartbeat] = {}

    def add(self, name: str, max_silence: timedelta | None, *, replace: bool = False) -> Heartbeat:
        """A new heartbeat called `name` (unique within a process unless `replace`)."""
        if name in self._beats and not replace:
            raise ValueError(f"heartbeat {name!r} already registered")
        heartbeat = Heartbeat(name, max_silence, self._clock)
        self._beats[name] = heartbeat
        return heartbeat

    def spawn(
        self, name: str, max_silence: timedelta | None, coro: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        """Run the loop `coro` as task `name` with a heartbeat of that name, armed now;
        `beat()` inside it beats that heartbeat."""
        heartbeat = self.add(name, max_silence, replace=True)
        context = contextvars.copy_context()
        context.run(_current.set, heartbeat)
        task = asyncio.create_task(coro, name=name, context=context)
        heartbeat.watch(task)
        return task

    def __getitem__(self, name: str) -> Heartbeat:
        return self._beats[name]

    def __contains__(self, name: object) -> bool:
        return name in self._beats

    def stop(self) -> None:
        """Shutting down: loops that end now are not dead."""
        for heartbeat in list(self._beats.values()):
            heartbeat.stop()

    def stale(self) -> Mapping[str, str]:
        """Loop name → why it is not live, for every loop that is not; empty when all are."""
        problems = {name: hb.problem() for name, hb in list(self._beats.items())}
        return {name: why for name, why in problems.items() if why is not None}


_current: contextvars.ContextVar[Heartbeat | None] = contextvars.ContextVar(
    "taskflow_heartbeat", default=None
)


def beat() -> None:
    """Beat the heartbeat of the loop this runs in (`Heartbeats.spawn`); else nothing."""
    heartbeat = _current.get()
    if heartbeat is not None:
        heartbeat.beat()
