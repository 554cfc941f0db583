"""The reminder dataflow in-process: TestingSource/TestingSink and run_main, fixed clock."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from events.codec import decode
from events.dlq import SOURCE_OFFSET, SOURCE_TOPIC
from events.payloads import ReminderDigest, TaskReminder
from events.topics import Topics
from pipelines.reminders import build_flow
from pipelines.reminders.sent import NOTHING_SENT, Outgoing, SentIndex
from reminders.db.store import LogEntry, ScheduleChange
from reminders.domain.clock import FakeClock
from reminders.domain.ids import reminder_id
from reminders.settings import ReminderSettings
from tests.unit.reminders.factories import T0, TASK, TRACEPARENT, message


def _settings(**kw: Any) -> ReminderSettings:
    # No tick rounding: with a fixed clock a reminder due "now" must wake right away.
    # No startup gap either: the tests' clock stands still at T0.
    return ReminderSettings(timer_tick=timedelta(0), **({"digest_startup": timedelta(0)} | kw))


TOPICS = Topics("t.")
SETTINGS = _settings(digest_window=timedelta(seconds=60), remind_at_due=False)


def run_recorded(
    messages: list[Any],
    now: Any = T0 + timedelta(hours=2),
    settings: ReminderSettings = SETTINGS,
    sent: SentIndex = NOTHING_SENT,
) -> tuple[list[Outgoing], list[Any]]:
    out: list[Outgoing] = []
    store: list[Any] = []
    clock = FakeClock(now)
    flow = build_flow(
        TestingSource(messages),
        TestingSink(out),
        TestingSink(store),
        topics=TOPICS,
        settings=settings,
        clock=clock,
        sent=sent,
    )
    run_main(flow)  # type: ignore[no-untyped-call]
    return out, store


def run(
    messages: list[Any], now: Any = T0 + timedelta(hours=2), settings: ReminderSettings = SETTINGS
) -> tuple[list[KafkaSinkMessage[Any, Any]], list[Any]]:
    out, store = run_recorded(messages, now, settings)
    return [item.message for item in out], store


def payloads(out: list[KafkaSinkMessage[Any, Any]]) -> list[Any]:
    return [decode(m.value).data for m in out if m.topic == TOPICS.reminders]


def test_due_reminder_fires_with_deterministic_id_and_user_key() -> None:
    due = T0 + timedelta(hours=1)
    now = due - timedelta(minutes=15) + timedelta(milliseconds=30)
    out, _ = run([message("task.created", due_at=due, before=(timedelta(minutes=15),))], now)
    [sent] = out
    reminder = decode(sent.value).data
    assert isinstance(reminder, TaskReminder)
    assert sent.topic == TOPICS.reminders
    assert sent.key == b"alice"
    assert reminder.reminder_id == reminder_id(str(TASK), due - timedelta(minutes=15), 1)
    assert decode(sent.value).id == reminder.reminder_id
    assert reminder.kind == "before"
    assert reminder.due_at == due
    assert ("ce_type", b"task.reminder") in sent.headers
    # The fire continues the scheduling event's trace (same trace id, in header and event).
    traceparent = dict(sent.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == TRACEPARENT.split("-")[1]
    assert decode(sent.value).traceparent == traceparent


def test_future_reminder_is_scheduled_in_read_model_but_not_fired() -> None:
    due = T0 + timedelta(days=400)
    out, store = run([message("task.created", due_at=due, before=(timedelta(hours=1),))])
    assert payloads(out) == []
    [change] = [s for s in store if isinstance(s, ScheduleChange)]
    assert [(r.at, r.kind) for r in change.reminders] == [(due - timedelta(hours=1), "before")]


def test_due_date_move_rearms_and_stale_update_is_ignored() -> None:
    far = T0 + timedelta(days=400)
    soon = T0 + timedelta(hours=1)
    out, _ = run(
        [
            message("task.created", 0, due_at=far, before=(timedelta(minutes=10),)),
            message("task.updated", 1, version=3, due_at=soon, before=(timedelta(minutes=10),)),
            # version 2 arrives late: ignored, the soon reminder stays armed
            message("task.updated", 2, version=2, due_at=far, before=(timedelta(minutes=10),)),
        ],
        now=soon - timedelta(minutes=9),
    )
    [reminder] = payloads(out)
    assert reminder.remind_at == soon - timedelta(minutes=10)
    assert reminder.task_version == 3


def test_completion_and_deletion_cancel() -> None:
    due = T0 + timedelta(hours=1)
    other = uuid.UUID(int=2)
    out, store = run(
        [
            message("task.created", 0, due_at=due, before=(timedelta(minutes=5),)),
            message(
                "task.completed",
                1,
                version=2,
                due_at=due,
                status="completed",
                completed_at=T0,
                before=(timedelta(minutes=5),),
            ),
            message("task.created", 2, task_id=other, due_at=due),
            message("task.deleted", 3, task_id=other, version=2),
        ],
        settings=_settings(remind_at_due=True),
    )
    assert payloads(out) == []
    last: dict[str, ScheduleChange] = {s.task_id: s for s in store if isinstance(s, ScheduleChange)}
    assert all(change.reminders == () for change in last.values())
    assert len(last) == 2


def test_burst_for_one_user_gives_one_reminder_then_one_digest() -> None:
    base = T0 + timedelta(hours=1)
    msgs = [
        message(
            "task.created",
            i,
            task_id=uuid.UUID(int=i + 1),
            due_at=base + timedelta(seconds=i),
            title=f"task {i}",
        )
        for i in range(3)
    ]
    out, store = run(msgs, now=base + timedelta(seconds=3), settings=_settings())
    sent = payloads(out)
    assert isinstance(sent[0], TaskReminder)
    assert sent[0].remind_at == base
    [digest] = sent[1:]
    assert isinstance(digest, ReminderDigest)
    assert [item.title for item in digest.items] == ["task 1", "task 2"]
    assert {e.kind for e in store if isinstance(e, LogEntry)} >= {"fired", "digest", "held"}


def burst(n: int, base: Any) -> list[Any]:
    return [
        message(
            "task.created",
            i,
            task_id=uuid.UUID(int=i + 1),
            due_at=base + timedelta(seconds=i),
            title=f"task {i}",
        )
        for i in range(n)
    ]


def test_every_first_send_is_recorded_with_the_reminders_it_carries() -> None:
    base = T0 + timedelta(hours=1)
    out, _ = run_recorded(burst(3, base), now=base + timedelta(seconds=3), settings=_settings())
    alone, digest = [decode(item.message.value).data for item in out]
    assert isinstance(alone, TaskReminder) and isinstance(digest, ReminderDigest)
    records = [item.record for item in out]
    assert records[0] is not None and records[1] is not None
    assert records[0].reminder_ids == (alone.reminder_id,)
    assert records[0].event_id == alone.reminder_id
    assert records[1].reminder_ids == tuple(item.reminder_id for item in digest.items)
    assert records[1].event_id == digest.digest_id
    for item in out:
        assert item.record is not None
        assert (item.record.value, item.record.key) == (item.message.value, item.message.key)
        assert list(item.record.headers) == item.message.headers
        assert item.record.topic == item.message.topic == TOPICS.reminders


def test_a_replay_sends_reminders_sent_before_as_they_went_and_groups_only_the_rest() -> None:
    """The first run sent r0 alone and r1, r2 in a digest; the second run (a replay) fires
    all three again plus a new one, r3, with no window open: before, the three would have
    been regrouped under new ids."""
    base = T0 + timedelta(hours=1)
    first, first_store = run_recorded(
        burst(3, base), now=base + timedelta(seconds=3), settings=_settings()
    )
    records = [item.record for item in first if item.record is not None]
    index = SentIndex(lambda: records)
    again, store = run_recorded(
        burst(4, base), now=base + timedelta(seconds=4), settings=_settings(), sent=index
    )
    resent = [item for item in again if item.record is None]
    assert [item.message.value for item in resent] == [item.message.value for item in first]
    [new] = [item for item in again if item.record is not None]
    reminder = decode(new.message.value).data
    assert isinstance(reminder, TaskReminder) and reminder.title == "task 3"
    # A resend logs the rows of its first send again (the crash may have kept them from
    # the read model; they are keyed by id): the same rows, rebuilt from the message.
    first_log = [e for e in first_store if isinstance(e, LogEntry)]
    replay_log = [e for e in store if isinstance(e, LogEntry)]
    assert {e.kind for e in first_log} == {"fired", "digest", "held"}
    assert set(replay_log) == {*first_log, *(e for e in replay_log if e.id == reminder.reminder_id)}
    assert len(replay_log) == len(first_log) + 1


def test_lone_reminders_of_different_users_are_not_delayed() -> None:
    base = T0 + timedelta(hours=1)
    msgs = [
        message("task.created", i, task_id=uuid.UUID(int=i + 1), user_id=f"u{i}", due_at=base)
        for i in range(3)
    ]
    out, _ = run(msgs, now=base, settings=_settings())
    assert [type(p) for p in payloads(out)] == [TaskReminder] * 3


def test_reminders_missed_while_away_fold_into_one_digest() -> None:
    base = T0 + timedelta(hours=1)
    msgs = [
        message("task.created", i, task_id=uuid.UUID(int=i + 1), due_at=base + timedelta(minutes=i))
        for i in range(3)
    ]
    out, store = run(msgs, now=base + timedelta(hours=3), settings=_settings())
    [digest] = payloads(out)
    assert isinstance(digest, ReminderDigest)
    assert [item.kind for item in digest.items] == ["missed"] * 3
    assert sum(1 for e in store if isinstance(e, LogEntry) and e.kind == "missed") == 3


def test_poison_message_goes_to_dlq_and_flow_continues() -> None:
    due = T0 + timedelta(hours=1)
    poison = KafkaSourceMessage(
        key=b"k",
        value=b"{not json",
        topic="taskflow.tasks",
        headers=[("x", b"1")],
        partition=2,
        offset=41,
    )
    out, store = run(
        [poison, message("task.created", 42, due_at=due)], now=due, settings=_settings()
    )
    dead = [m for m in out if m.topic == TOPICS.dlq]
    assert len(dead) == 1
    assert dead[0].value == b"{not json"
    assert dead[0].key == b"k"
    headers = dict(dead[0].headers)
    assert headers[SOURCE_TOPIC] == b"taskflow.tasks"
    assert headers[SOURCE_OFFSET] == b"41"
    assert headers["x"] == b"1"
    assert len(payloads(out)) == 1
    assert LogEntry("dlq/taskflow.tasks/2/41", "dlq") in store


def test_wake_ups_round_up_to_the_tick_on_the_runtime_clock() -> None:
    from datetime import UTC, datetime

    from pipelines.reminders.logic import FlowContext
    from reminders.domain.catchup import CatchUpPolicy

    runtime = FakeClock(datetime(2026, 1, 5, 12, 0, 0, 10_000, tzinfo=UTC))
    ctx = FlowContext(
        clock=FakeClock(T0),
        policy=CatchUpPolicy(),
        remind_at_due=True,
        idle_ttl=timedelta(days=1),
        digest_window=timedelta(seconds=60),
        tick=timedelta(milliseconds=50),
        runtime_clock=runtime,
    )
    # 1 s ahead by the injected clock = 12:00:01.010 on the runtime clock -> next tick.
    assert ctx.wake_at(T0 + timedelta(seconds=1)) == datetime(
        2026, 1, 5, 12, 0, 1, 50_000, tzinfo=UTC
    )
    assert ctx.wake_at(T0 + timedelta(milliseconds=40)) == datetime(
        2026, 1, 5, 12, 0, 0, 50_000, tzinfo=UTC
    )
    assert ctx.wake_at(None) is None


def test_snooze_moves_the_next_reminder() -> None:
    due = T0 + timedelta(hours=1)
    until = T0 + timedelta(minutes=90)
    out, store = run(
        [
            message("task.created", 0, due_at=due, before=(timedelta(minutes=15),)),
            message(
                "task.snoozed", 1, version=2, due_at=due, before=(timedelta(minutes=15),),
                snoozed_until=until, updated_at=T0 + timedelta(minutes=40),
            ),
        ],
        now=until,
    )  # fmt: skip
    [reminder] = payloads(out)
    assert (reminder.kind, reminder.remind_at) == ("snooze", until)


def test_recurring_task_fires_and_arms_its_next_occurrence() -> None:
    due = T0 + timedelta(hours=1)
    out, store = run(
        [message("task.created", 0, due_at=due, recurrence="FREQ=DAILY")],
        now=due,
        settings=_settings(),
    )
    [reminder] = payloads(out)
    assert reminder.remind_at == due
    last = [s for s in store if isinstance(s, ScheduleChange)][-1]
    assert [r.at for r in last.reminders] == [due + timedelta(days=1)]


def test_valid_cloudevent_that_is_not_a_task_event_is_dead_lettered() -> None:
    from events.codec import Envelope, encode

    reminder = TaskReminder(
        reminder_id="r", task_id=TASK, user_id="alice", title="x", remind_at=T0,
        task_version=1, fired_at=T0,
    )  # fmt: skip
    value = encode(Envelope(data=reminder, source="/x", subject=str(TASK), user_id="alice"))
    wrong = KafkaSourceMessage(key=b"k", value=value, topic="taskflow.tasks", offset=7)
    out, _ = run([wrong])
    [dead] = out
    assert dead.topic == TOPICS.dlq
    assert b"not a task event" in dict(dead.headers)["dlq.error"]
