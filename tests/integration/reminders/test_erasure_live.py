"""`user.erased` through the real reminder dataflow command (Tansu, PostgreSQL): the user's
schedule rows go, their reminder never fires, a later task event of theirs arms nothing,
a replay publishes nothing new, and a kill -9 mid-erasure still completes it exactly once."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from events.codec import Envelope, decode, encode
from events.kafka import KafkaSettings
from events.payloads import TaskReminder, UserErased, UserErasureApplied
from pipelines.reminders.erasure import applied_event_id
from tests.integration.reminders.harness import FlowProcess, Received, TaskWriter, TopicReader
from tests.integration.reminders.test_flow_live import (
    _tick,
    kafka,  # noqa: F401 - the fixture
    reminders_for,
    rows,
    start_flow,
    wait_rows,
    whole_seconds_from_now,
)

pytestmark = pytest.mark.integration


def send_erased(writer: TaskWriter, user: str, erasure_id: uuid.UUID) -> bytes:
    """As the task service's relay does: taskflow.tasks, keyed by the user id."""
    data = UserErased(
        user_id=user, erasure_id=erasure_id, requested_at=datetime.now(UTC), requested_by="self"
    )
    value = encode(Envelope(data=data, source="/test/task-api", subject=user, user_id=user))
    writer.raw(user.encode(), value, [("ce_type", b"user.erased")])
    return value


def applied(seen: list[Received], user: str) -> list[Received]:
    return [r for r in seen if isinstance(r.value, UserErasureApplied) and r.value.user_id == user]


async def wait_for(check: object, flow: FlowProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert flow.alive(), flow.log.read_text()[-3000:]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await _tick()


async def test_erasure_cancels_rows_and_timers_drops_late_events_and_replays(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    kafka: tuple[TaskWriter, TopicReader],  # noqa: F811
    reminders_db: str,
    db: asyncpg.Connection,
) -> None:
    writer, reader = kafka
    flow = start_flow(tmp_path, kafka_settings, reminders_db)
    try:
        alice, bob, late, marker = (uuid.uuid4() for _ in range(4))
        due = whole_seconds_from_now(10)
        writer.send("task.created", alice, user="alice", version=1, due_at=due)
        writer.send("task.created", bob, user="bob", version=1, due_at=due)
        await wait_rows(db, alice, [due], flow)
        await wait_rows(db, bob, [due], flow)

        erasure = uuid.uuid4()
        value = send_erased(writer, "alice", erasure)
        # Produced before the erasure by the task service, arriving after it (other key).
        writer.send("task.created", late, user="alice", version=1, due_at=due)

        async def erased() -> bool:
            return bool(await db.fetchval("SELECT 1 FROM erased_users WHERE user_id = 'alice'"))

        await wait_for(erased, flow)
        assert await rows(db, alice) == []
        seen = reader.poll_until(lambda s: bool(applied(s, "alice")), timeout=15)
        # The same user.erased again (a relay re-send), then a marker behind it.
        writer.raw(b"alice", value, [("ce_type", b"user.erased")])
        writer.send("task.created", marker, user="bob", version=1, due_at=due + timedelta(1))
        await wait_rows(db, marker, [due + timedelta(1)], flow)

        seen = reader.poll_until(lambda s: bool(reminders_for(s, bob)), timeout=30)
        assert datetime.now(UTC) >= due
        assert reminders_for(seen, alice) == [] and reminders_for(seen, late) == []
        assert await rows(db, late) == []
        # Bob's reminder fired: the read model drops its row a moment after the Kafka send
        # (two sinks), so wait for it rather than race it.
        await wait_rows(db, bob, [], flow)
        [event] = applied(seen, "alice")
        assert event.key == b"alice"
        assert str(event.value.erasure_id) == str(erasure)
        assert event.value.service == "reminders" and event.value.outcome == "completed"
        assert event.headers["ce_type"] == b"user.erasure.applied"
        assert [r.value for r in seen if r.key == b"bob"][0].task_id == bob
        assert isinstance([r.value for r in seen if r.key == b"bob"][0], TaskReminder)
    finally:
        flow.stop()


async def test_kill9_mid_erasure_completes_exactly_once_after_restart(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    kafka: tuple[TaskWriter, TopicReader],  # noqa: F811
    reminders_db: str,
    db: asyncpg.Connection,
) -> None:
    writer, reader = kafka
    # Snapshots every 30 s: whatever the flow did of the erasure before the kill is not
    # in the snapshot, so the restarted flow does it again from the last epoch.
    flow = start_flow(tmp_path, kafka_settings, reminders_db, snapshot_s=30)
    try:
        task, sentinel = uuid.uuid4(), uuid.uuid4()
        due = whole_seconds_from_now(12)
        writer.send("task.created", task, user="kim", version=1, due_at=due)
        writer.send("task.created", sentinel, user="sol", version=1, due_at=due)
        await wait_rows(db, task, [due], flow)
        erasure = uuid.uuid4()
        send_erased(writer, "kim", erasure)
        flow.kill9()
        flow.start()

        async def done() -> bool:
            return bool(await db.fetchval("SELECT 1 FROM erased_users WHERE user_id = 'kim'"))

        await wait_for(done, flow)
        seen = reader.poll_until(lambda s: bool(reminders_for(s, sentinel)), timeout=40)
        assert reminders_for(seen, task) == []
        assert await rows(db, task) == []
        assert {r.value.erasure_id for r in applied(seen, "kim")} == {erasure}
        # Every copy (the restarted flow may publish it again) carries the same event id.
        raw = TopicReader(kafka_settings, kafka_settings.topics.reminders)
        try:
            every = raw.poll_until(lambda s: len(s) >= len(seen), 15, decode_values=False)
        finally:
            raw.close()
        envelopes = [decode(r.value) for r in every if r.key == b"kim"]
        assert {e.id for e in envelopes} == {applied_event_id(erasure)}
        assert await db.fetchval("SELECT count(*) FROM erased_users WHERE user_id = 'kim'") == 1
    finally:
        flow.stop()
