"""The sharded timer step: many tasks per Bytewax key, resumable from a snapshot."""

from __future__ import annotations

import uuid
from datetime import timedelta

from events.payloads import TaskState
from pipelines.reminders.logic import FlowContext, TaskInput
from pipelines.reminders.shards import TimerShardLogic, shard_of
from reminders.db.store import ScheduleChange
from reminders.domain.catchup import CatchUpPolicy
from reminders.domain.clock import FakeClock
from reminders.domain.timers import Fired
from tests.unit.reminders.factories import T0, payload

DUE = T0 + timedelta(hours=1)


def context(clock: FakeClock) -> FlowContext:
    # runtime clock = injected clock, no tick: wake times are exactly the reminder times
    return FlowContext(
        clock=clock, policy=CatchUpPolicy(), remind_at_due=True, idle_ttl=timedelta(days=1),
        digest_window=timedelta(seconds=60), tick=timedelta(0), runtime_clock=clock,
    )  # fmt: skip


def item(event_type: str, task: TaskState) -> TaskInput:
    return TaskInput(str(task.id), event_type, task, None)


def test_shard_key_is_stable_and_spreads_tasks() -> None:
    assert shard_of("01900000-0000-7000-8000-000000000001", 16384) == shard_of(
        "01900000-0000-7000-8000-000000000001", 16384
    )
    keys = {shard_of(str(uuid.UUID(int=i)), 64) for i in range(2000)}
    assert len(keys) == 64


def test_shard_wakes_at_its_soonest_task_and_fires_only_due_ones() -> None:
    clock = FakeClock(T0)
    logic = TimerShardLogic(None, context(clock))
    a = payload("task.created", task_id=uuid.UUID(int=1), due_at=DUE)
    b = payload("task.created", task_id=uuid.UUID(int=2), due_at=DUE + timedelta(minutes=5))
    out_a, _ = logic.on_item(item("task.created", a))
    logic.on_item(item("task.created", b))
    assert [type(o) for o in out_a] == [ScheduleChange]
    assert logic.notify_at() == DUE
    clock.now = DUE
    out, discard = logic.on_notify()
    fired = [o for o in out if isinstance(o, Fired)]
    assert [f.task_id for f in fired] == [str(a.id)] and not discard
    assert logic.notify_at() == DUE + timedelta(minutes=5)


def test_resumed_shard_keeps_timers_and_versions() -> None:
    clock = FakeClock(T0)
    logic = TimerShardLogic(None, context(clock))
    task = payload("task.created", due_at=DUE)
    logic.on_item(item("task.created", task))
    resumed = TimerShardLogic(logic.snapshot(), context(clock))
    assert resumed.notify_at() == DUE
    stale, _ = resumed.on_item(item("task.created", task))  # same version again: ignored
    assert stale == []
    clock.now = DUE + timedelta(seconds=2)
    out, _ = resumed.on_notify()
    assert [o.remind_at for o in out if isinstance(o, Fired)] == [DUE]


def test_idle_tasks_are_forgotten_after_the_ttl_and_empty_shard_discarded() -> None:
    clock = FakeClock(T0)
    logic = TimerShardLogic(None, context(clock))
    logic.on_item(item("task.created", payload("task.created", due_at=None)))
    assert logic.notify_at() == T0 + timedelta(days=1)
    clock.now = T0 + timedelta(days=1)
    out, discard = logic.on_notify()
    assert out == [] and discard and logic.tasks == {}
