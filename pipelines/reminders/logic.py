"""Shared parts of the reminder flow's steps, and the per-user digest window step.

Thin adapters: every decision is a plain function in `reminders.domain`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulLogic

from events.payloads import TaskState
from pipelines.reminders.erasure import ErasureDone, ErasureInput
from pipelines.reminders.sent import NOTHING_SENT, Resend, SentIndex
from reminders.domain.catchup import CatchUpPolicy
from reminders.domain.clock import Clock, system_clock
from reminders.domain.digest import Delivery, UserWindow, admit, alone, close
from reminders.domain.timers import Fired
from reminders.ports import LogEntry, ScheduleChange


@dataclass(frozen=True, slots=True)
class TaskInput:
    """A decoded task event on its way to the task's timers."""

    task_id: str
    event_type: str
    task: TaskState
    traceparent: str | None


@dataclass(frozen=True, slots=True)
class FlowContext:
    clock: Clock
    policy: CatchUpPolicy
    remind_at_due: bool
    idle_ttl: timedelta
    digest_window: timedelta
    # Wake-ups are rounded up to this tick so reminders due close together fire in one
    # activation: every activation costs a scan of all armed keys plus a sink flush and a
    # database commit, which at one activation per reminder would swamp the worker.
    tick: timedelta = timedelta(milliseconds=50)
    # Bytewax wakes timers by the system clock; with an injected clock the logic asks to
    # be woken after the *remaining* time by its own clock, so a fixed test clock works.
    runtime_clock: Clock = system_clock
    # Digest windows open only from this time on (by `clock`): see UserDigestLogic.
    hold_from: datetime = datetime.min.replace(tzinfo=UTC)
    # The reminders sent before this run: a replay sends those as they went out.
    sent: SentIndex = NOTHING_SENT

    def wake_at(self, target: datetime | None) -> datetime | None:
        """`target` (by the injected clock) on Bytewax's clock, rounded up to the tick."""
        if target is None:
            return None
        if self.clock is not self.runtime_clock:
            target = self.runtime_clock() + (target - self.clock())
        if self.tick:
            rest = (target - _EPOCH) % self.tick
            if rest:
                target += self.tick - rest
        return target


TimerOutput = Fired | ScheduleChange | LogEntry
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


ERASED = "erased"  # the digest state of an erased user (see UserDigestLogic)
DigestOut = Delivery | ErasureDone | Resend


class UserDigestLogic(StatefulLogic[Fired | ErasureInput, DigestOut, UserWindow | str]):
    """Keyed by user id: first reminder out at once, the rest of the window as one digest.

    An erasure (after every timer shard let go of the user) discards the window and keeps
    the key as `ERASED`: a reminder a shard fired just before it saw the erasure may reach
    this step after it, on the shorter path, and must not go out.

    Until `ctx.hold_from`, a logic built without saved state holds nothing: Bytewax 0.21
    runs a stateful step's items of the resume epoch before it loads the keys' saved
    state at that epoch's end, and the load then replaces (or, for a closed window,
    removes) the live logic, dropping what it held. Timers due while the flow was down
    fire right at restart, so in that gap each reminder goes out on its own (lost
    reminders, seen in the chaos suite).

    A reminder sent before this run (`ctx.sent`, see pipelines/reminders/sent.py) goes out
    as its recorded message and joins no window: a replay must not group it anew. That
    holds for the reminders a window restored from a snapshot holds, too: the window may
    have closed into a digest after the snapshot, before the crash.
    """

    def __init__(self, state: UserWindow | str | None, ctx: FlowContext) -> None:
        self.erased = state == ERASED
        window = state if isinstance(state, UserWindow) else None
        self.window = window
        self.ctx = ctx
        self._wake = ctx.wake_at(window.end) if window else None
        self._direct = state is None and ctx.clock() < ctx.hold_from
        self._restored_held_checked = window is None

    def on_item(self, value: Fired | ErasureInput) -> tuple[list[DigestOut], bool]:
        if isinstance(value, ErasureInput):
            self.erased, self.window, self._wake = True, None, None
            return [ErasureDone(value)], StatefulLogic.RETAIN
        if self.erased:
            return [], StatefulLogic.RETAIN
        out = self._resend_restored_held()
        resends = self.ctx.sent.replayed(value.reminder_id)
        if resends is not None:
            return [*out, *resends], self._keep()
        if self._direct:
            return [*out, alone(value, self.ctx.clock())], StatefulLogic.DISCARD
        self.window, sent = admit(self.window, value, self.ctx.clock(), self.ctx.digest_window)
        self._wake = self.ctx.wake_at(self.window.end)
        return [*out, *sent], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[DigestOut], bool]:
        out = self._resend_restored_held()
        digest = close(self.window) if self.window else None
        self.window = None
        return ([*out, digest] if digest else out), not self.erased

    def _keep(self) -> bool:
        """Discard a logic that holds no window (and is not the mark of an erased user)."""
        return StatefulLogic.DISCARD if self.window is None else StatefulLogic.RETAIN

    def _resend_restored_held(self) -> list[DigestOut]:
        """Once, for a window restored from a snapshot: its reminders sent before this run
        leave it, and their recorded messages go out again (items admitted in this run were
        checked as they came)."""
        if self._restored_held_checked or self.window is None:
            return []
        self._restored_held_checked = True
        out: list[DigestOut] = []
        unsent: list[Fired] = []
        for item in self.window.held:
            resends = self.ctx.sent.replayed(item.reminder_id)
            if resends is None:
                unsent.append(item)
            else:
                out.extend(resends)
        if len(unsent) < len(self.window.held):
            self.window = replace(self.window, held=tuple(unsent))
        return out

    def on_eof(self) -> tuple[list[DigestOut], bool]:
        # The input ended (bounded source): deliver what is held rather than lose it.
        return self.on_notify()

    def notify_at(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> UserWindow | str:
        if self.erased:
            return ERASED
        assert self.window is not None  # noqa: S101 - discarded once the window closes
        return self.window
