"""`user.erased` in the reminder flow, in-process: timers and schedule rows of the user go,
later (reordered) task events of the user arm nothing, a repeated erasure publishes once,
other users keep their reminders, other non-task events still go to the DLQ."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage

from events.codec import Envelope, decode, encode
from events.payloads import TaskReminder, UserErased, UserErasureApplied
from pipelines.reminders.erasure import applied_event_id
from reminders.db.store import ErasedUser, ScheduleChange
from tests.unit.reminders.factories import T0, message
from tests.unit.reminders.test_flow import TOPICS, _settings, payloads, run

ERASURE = uuid.UUID("01900000-0000-7000-8000-00000000e1a5")
ALICE_TASK = uuid.UUID("01900000-0000-7000-8000-00000000a001")
BOB_TASK = uuid.UUID("01900000-0000-7000-8000-00000000b001")
LATE_TASK = uuid.UUID("01900000-0000-7000-8000-00000000a002")
SETTINGS = _settings(digest_window=timedelta(seconds=60), remind_at_due=False, timer_shards=8)


def erased(user: str = "alice", erasure_id: uuid.UUID = ERASURE, offset: int = 50) -> Any:
    data = UserErased(user_id=user, erasure_id=erasure_id, requested_at=T0, requested_by="self")
    envelope = Envelope(data=data, source="/taskflow/task-service", subject=user, user_id=user)
    return KafkaSourceMessage(
        key=user.encode(), value=encode(envelope), topic="taskflow.tasks",
        headers=[("ce_type", b"user.erased")], partition=0, offset=offset,
    )  # fmt: skip


def created(task_id: uuid.UUID, user: str, offset: int) -> Any:
    due = T0 + timedelta(hours=1)
    return message(
        "task.created", offset, task_id=task_id, user_id=user, due_at=due,
        before=(timedelta(minutes=15),),
    )  # fmt: skip


def applied(out: list[Any]) -> list[Any]:
    return [decode(m.value) for m in out if m.topic == TOPICS.reminders
            and isinstance(decode(m.value).data, UserErasureApplied)]  # fmt: skip


def test_erasure_cancels_timers_and_arms_nothing_for_later_events() -> None:
    # Reminders at 09:45, the clock stands at 09:00: alice's timer is armed (a schedule
    # row), then erased; a task event of alice produced before the erasure arrives after
    # it (another key) and arms nothing. (The live test shows the timer never fires.)
    events = [
        created(ALICE_TASK, "alice", 1),
        created(BOB_TASK, "bob", 2),
        erased(offset=3),
        created(LATE_TASK, "alice", 4),
        erased(offset=5),  # the same erasure again (a relay re-send)
    ]
    out, store = run(events, T0, SETTINGS)
    assert not [p for p in payloads(out) if isinstance(p, TaskReminder)]
    [event] = applied(out)
    assert event.id == applied_event_id(ERASURE)
    assert event.data.service == "reminders" and event.data.user_id == "alice"
    assert event.data.erasure_id == ERASURE and event.data.outcome == "completed"
    assert ("ce_type", b"user.erasure.applied") in next(m.headers for m in out if m.key == b"alice")
    assert [op for op in store if isinstance(op, ErasedUser)] == [
        ErasedUser("alice", str(ERASURE), T0)
    ]
    # Alice's first task was scheduled (its rows go with ErasedUser); the late one never.
    changed = [op.task_id for op in store if isinstance(op, ScheduleChange)]
    assert sorted(changed) == sorted([str(ALICE_TASK), str(BOB_TASK)])
    assert store.index(ErasedUser("alice", str(ERASURE), T0)) > 1


def test_erasure_with_the_default_shard_count_then_due_reminders_of_others_fire() -> None:
    # The erasure goes to all 16,384 shards; then bob's task, already due, fires.
    events = [created(ALICE_TASK, "alice", 1), erased(offset=2), created(BOB_TASK, "bob", 3)]
    settings = _settings(digest_window=timedelta(seconds=60), remind_at_due=False)
    out, _ = run(events, T0 + timedelta(minutes=46), settings)
    assert len(applied(out)) == 1
    assert [p.user_id for p in payloads(out) if isinstance(p, TaskReminder)] == ["bob"]


def test_other_non_task_events_still_go_to_the_dlq() -> None:
    data = UserErasureApplied(user_id="alice", erasure_id=ERASURE, service="tasks", applied_at=T0)
    envelope = Envelope(data=data, source="/x", subject="alice", user_id="alice")
    msg = KafkaSourceMessage(
        key=b"alice", value=encode(envelope), topic="taskflow.tasks", headers=[],
        partition=0, offset=9,
    )  # fmt: skip
    out, _ = run([msg], T0, SETTINGS)
    assert [m.topic for m in out] == [TOPICS.dlq]
