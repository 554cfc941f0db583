"""Per-task timer state: how task events re-arm, cancel or ignore, and what fires when.

The state is immutable; every transition returns a new one (the dataflow stores it packed,
see `pipelines/reminders/snapshot.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from events.payloads import TaskState
from reminders.domain.catchup import CatchUpPolicy, classify
from reminders.domain.ids import reminder_id
from reminders.domain.schedule import Scheduled, TaskSpec, plan
from reminders.exceptions import InvalidTimezone, ReminderError

DELETED = "task.deleted"


@dataclass(frozen=True, slots=True)
class TaskTimers:
    """What one task has armed. `fired_through` is the latest instant already handled."""

    task_id: str
    user_id: str
    title: str
    version: int
    spec: TaskSpec
    pending: tuple[Scheduled, ...] = ()
    fired_through: datetime | None = None
    traceparent: str | None = None
    active: bool = True  # False once completed (non-recurring) or deleted
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Fired:
    """A reminder that came due, with the catch-up decision already taken."""

    reminder_id: str
    task_id: str
    user_id: str
    title: str
    remind_at: datetime
    due_at: datetime | None
    kind: str
    task_version: int
    fired_at: datetime
    missed: bool
    traceparent: str | None


def safe_plan(spec: TaskSpec, after: datetime, remind_at_due: bool) -> tuple[Scheduled, ...]:
    """`plan`, degrading a bad RRULE to a one-off task and a bad zone to UTC, never raising."""
    try:
        return plan(spec, after, remind_at_due=remind_at_due)
    except InvalidTimezone:
        return safe_plan(replace(spec, timezone="UTC"), after, remind_at_due)
    except ReminderError:
        return plan(replace(spec, recurrence=None), after, remind_at_due=remind_at_due)


def apply_event(
    state: TaskTimers | None,
    event_type: str,
    task: TaskState,
    traceparent: str | None = None,
    *,
    remind_at_due: bool = True,
) -> TaskTimers | None:
    """The state after `task` (the full task after a change), or None if the event is stale.

    A change never creates reminders in its own past (before `task.updated_at`), but keeps
    overdue ones that were already armed and that it does not alter, so they still fire
    (late, under the catch-up policy) after downtime.
    """
    if state is not None and task.version <= state.version:
        return None
    base = TaskTimers(
        task_id=str(task.id),
        user_id=task.user_id,
        title=task.title,
        version=task.version,
        spec=TaskSpec.from_task(task),
        fired_through=state.fired_through if state else None,
        traceparent=traceparent,
    )
    if event_type == DELETED:
        return replace(base, active=False, deleted=True)
    if task.status == "completed":
        return replace(base, active=False)
    fired = base.fired_through
    threshold = task.updated_at if fired is None else max(task.updated_at, fired)
    fresh = safe_plan(base.spec, threshold, remind_at_due)
    overdue = [r for r in (state.pending if state else ()) if r.at <= threshold]
    if overdue:
        still_wanted = set(safe_plan(base.spec, fired or _before(overdue), remind_at_due))
        kept = [r for r in overdue if r in still_wanted]
        fresh = tuple(sorted({*kept, *fresh}))
    return replace(base, pending=fresh)


def _before(reminders: list[Scheduled]) -> datetime:
    return min(r.at for r in reminders) - timedelta(microseconds=1)


def next_time(state: TaskTimers) -> datetime | None:
    """When this task's timer must wake next."""
    return state.pending[0].at if state.pending else None


def fire_due(
    state: TaskTimers,
    now: datetime,
    fired_at: datetime,
    policy: CatchUpPolicy,
    *,
    remind_at_due: bool = True,
) -> tuple[TaskTimers, list[Fired], list[Scheduled]]:
    """Pop every reminder due at `now`; returns (state, fired or missed, dropped as too old).

    A recurring task arms its next occurrence once the current one has nothing pending.
    """
    due = [r for r in state.pending if r.at <= now]
    if not due:
        return state, [], []
    rest = state.pending[len(due) :]
    fired_through = max(due[-1].at, state.fired_through or due[-1].at)
    if not rest and state.active and state.spec.recurrence:
        rest = safe_plan(state.spec, fired_through, remind_at_due)
    out: list[Fired] = []
    dropped: list[Scheduled] = []
    for reminder in due:
        decision = classify(policy, reminder.at, reminder.kind, fired_at)
        if decision == "drop":
            dropped.append(reminder)
            continue
        out.append(
            Fired(
                reminder_id=reminder_id(state.task_id, reminder.at, state.version),
                task_id=state.task_id,
                user_id=state.user_id,
                title=state.title,
                remind_at=reminder.at,
                due_at=reminder.due_at,
                kind=reminder.kind,
                task_version=state.version,
                fired_at=fired_at,
                missed=decision == "missed",
                traceparent=state.traceparent,
            )
        )
    return replace(state, pending=rest, fired_through=fired_through), out, dropped
