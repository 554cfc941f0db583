"""The real dataflow command against the real broker (Tansu) and PostgreSQL.

The flow runs as `python -m bytewax.run pipelines.reminders:flow -r DIR -s N -b 0` in a
subprocess, exactly as deployed; tests produce task events and read the output topics.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from events.dlq import SOURCE_OFFSET, SOURCE_TOPIC
from events.kafka import KafkaSettings
from events.payloads import ReminderDigest, TaskReminder
from tests.integration.reminders.harness import (
    TRACEPARENT,
    FlowProcess,
    Received,
    TaskWriter,
    TopicReader,
    flow_env,
)

pytestmark = pytest.mark.integration

FAR = timedelta(days=30)


@pytest.fixture
def kafka(kafka_settings: KafkaSettings) -> Iterator[tuple[TaskWriter, TopicReader]]:
    reader = TopicReader(kafka_settings, kafka_settings.topics.reminders)
    try:
        yield TaskWriter(kafka_settings), reader
    finally:
        reader.close()


def start_flow(
    tmp_path: Path, kafka: KafkaSettings, db_url: str, snapshot_s: int = 1, **extra: str
) -> FlowProcess:
    flow = FlowProcess.prepare(tmp_path, flow_env(kafka, db_url, **extra), snapshot_s)
    flow.start()
    return flow


async def rows(db: asyncpg.Connection, task: uuid.UUID) -> list[datetime]:
    records = await db.fetch(
        "SELECT remind_at FROM scheduled_reminder WHERE task_id = $1 ORDER BY remind_at", task
    )
    return [r["remind_at"] for r in records]


async def wait_rows(
    db: asyncpg.Connection,
    task: uuid.UUID,
    expected: list[datetime],
    flow: FlowProcess,
    timeout: float = 30.0,
) -> None:
    """Poll the read model until `task` has exactly `expected` scheduled."""
    deadline = time.monotonic() + timeout
    while (found := await rows(db, task)) != expected:
        assert flow.alive(), flow.log.read_text()[-3000:]
        if time.monotonic() > deadline:
            raise TimeoutError(f"read model for {task}: {found} != {expected}")
        await _tick()


async def wait_live(writer: TaskWriter, db: asyncpg.Connection, flow: FlowProcess) -> None:
    """The flow is live once a first task shows up in its read model."""
    warm = uuid.uuid4()
    warm_due = whole_seconds_from_now(3600)
    writer.send("task.created", warm, user="w", version=1, due_at=warm_due)
    await wait_rows(db, warm, [warm_due], flow)


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.05)  # polling interval of a deadline loop, not a wait for an event


def reminders_for(seen: list[Received], task: uuid.UUID) -> list[TaskReminder]:
    return [r.value for r in seen if isinstance(r.value, TaskReminder) and r.value.task_id == task]


def whole_seconds_from_now(seconds: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


async def test_fires_rearms_cancels_ignores_stale_digests_and_dead_letters(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    kafka: tuple[TaskWriter, TopicReader],
    reminders_db: str,
    db: asyncpg.Connection,
) -> None:
    writer, reader = kafka
    flow = start_flow(tmp_path, kafka_settings, reminders_db, digest_window="PT2S")
    try:
        await wait_live(writer, db, flow)

        base = whole_seconds_from_now(3)
        ids = {name: uuid.uuid4() for name in "abcdefgs"}
        writer.send("task.created", ids["a"], user="ann", version=1, due_at=base)
        writer.send("task.created", ids["b"], user="bob", version=1, due_at=base + FAR)
        writer.send("task.updated", ids["b"], user="bob", version=2, due_at=base + timedelta(1))
        writer.send("task.created", ids["c"], user="cid", version=1, due_at=base)
        writer.send(
            "task.completed",
            ids["c"],
            user="cid",
            version=2,
            due_at=base,
            status="completed",
            completed_at=datetime.now(UTC),
        )
        writer.send("task.created", ids["d"], user="dan", version=1, due_at=base)
        writer.send("task.deleted", ids["d"], user="dan", version=2, due_at=base)
        writer.send("task.created", ids["e"], user="eve", version=1, due_at=base + FAR)
        writer.send("task.updated", ids["e"], user="eve", version=3, due_at=base)
        writer.send("task.updated", ids["e"], user="eve", version=2, due_at=base - timedelta(1))
        writer.raw(b"poison", b"\x00not a cloudevent", [("origin", b"test")])
        writer.send("task.created", ids["f"], user="dora", version=1, due_at=base)
        writer.send(
            "task.created",
            ids["g"],
            user="dora",
            version=1,
            due_at=base + timedelta(milliseconds=500),
        )
        writer.send(
            "task.created", ids["s"], user="sam", version=1, due_at=base + timedelta(seconds=2)
        )

        # Re-arm is visible in the read model before anything fires.
        await wait_rows(db, ids["b"], [base + timedelta(1)], flow)
        await wait_rows(db, ids["e"], [base], flow)

        def finished(seen: list[Received]) -> bool:
            digests = [r for r in seen if isinstance(r.value, ReminderDigest)]
            return bool(reminders_for(seen, ids["s"])) and bool(digests)

        seen = reader.poll_until(finished, timeout=30)

        [a] = [r for r in seen if isinstance(r.value, TaskReminder) and r.value.task_id == ids["a"]]
        assert a.value.remind_at == base
        assert (a.at - base).total_seconds() <= 1.0, f"late by {a.at - base}"
        assert a.key == b"ann"
        assert a.headers["traceparent"].decode().split("-")[1] == TRACEPARENT.split("-")[1]

        assert reminders_for(seen, ids["b"]) == []  # moved a day out: not yet
        assert reminders_for(seen, ids["c"]) == []  # completed
        assert reminders_for(seen, ids["d"]) == []  # deleted
        [e] = reminders_for(seen, ids["e"])  # stale v2 ignored
        assert (e.remind_at, e.task_version) == (base, 3)

        dora = [r.value for r in seen if r.key == b"dora"]
        assert [type(v) for v in dora] == [TaskReminder, ReminderDigest]
        assert dora[0].task_id == ids["f"]
        assert [i.task_id for i in dora[1].items] == [ids["g"]]

        assert await rows(db, ids["c"]) == [] and await rows(db, ids["d"]) == []
        assert await rows(db, ids["a"]) == []  # fired: no longer upcoming

        dlq = TopicReader(kafka_settings, kafka_settings.topics.dlq)
        try:
            [dead] = dlq.poll_until(lambda s: len(s) >= 1, 10, decode_values=False)
        finally:
            dlq.close()
        assert dead.value == b"\x00not a cloudevent"
        assert dead.key == b"poison"
        assert dead.headers[SOURCE_TOPIC] == kafka_settings.topics.tasks.encode()
        assert SOURCE_OFFSET in dead.headers and dead.headers["origin"] == b"test"
        assert flow.alive()
    finally:
        flow.stop()


async def test_kill9_before_due_still_fires_once_after_restart(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    kafka: tuple[TaskWriter, TopicReader],
    reminders_db: str,
    db: asyncpg.Connection,
) -> None:
    writer, reader = kafka
    flow = start_flow(tmp_path, kafka_settings, reminders_db)
    try:
        task, sentinel = uuid.uuid4(), uuid.uuid4()
        due = whole_seconds_from_now(8)
        writer.send("task.created", task, user="kim", version=1, due_at=due)
        writer.send(
            "task.created", sentinel, user="sol", version=1, due_at=due + timedelta(seconds=1)
        )
        await wait_rows(db, task, [due], flow)
        assert datetime.now(UTC) < due - timedelta(seconds=2)
        flow.kill9()
        flow.start()
        seen = reader.poll_until(lambda s: bool(reminders_for(s, sentinel)), timeout=30)
        [fired] = reminders_for(seen, task)
        assert fired.remind_at == due
        assert fired.fired_at - due <= timedelta(seconds=5)
    finally:
        flow.stop()


async def test_kill9_right_after_fire_duplicate_carries_same_id(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    kafka: tuple[TaskWriter, TopicReader],
    reminders_db: str,
    db: asyncpg.Connection,
) -> None:
    writer, reader = kafka
    # Snapshots every 30 s: the kill surely lands before the fire was snapshotted, so the
    # restarted flow replays and fires again; the duplicate must be recognisable.
    flow = start_flow(tmp_path, kafka_settings, reminders_db, snapshot_s=30)
    try:
        task = uuid.uuid4()
        due = whole_seconds_from_now(2)
        writer.send("task.created", task, user="lee", version=1, due_at=due)
        reader.poll_until(lambda s: bool(reminders_for(s, task)), timeout=30)
        flow.kill9()
        flow.start()
        seen = reader.poll_until(lambda s: len(reminders_for(s, task)) >= 2, timeout=30)
        fired = reminders_for(seen, task)
        assert len({r.reminder_id for r in fired}) == 1
        # ...and the read model counted it once.
        deadline = time.monotonic() + 10
        while await db.fetchval("SELECT count(*) FROM flow_log WHERE kind = 'fired'") < 1:
            assert time.monotonic() < deadline
            await _tick()
        assert (
            await db.fetchval("SELECT count(*) FROM flow_log WHERE id = $1", fired[0].reminder_id)
            == 1
        )
    finally:
        flow.stop()


async def test_kill9_after_a_digest_then_a_restart_that_sends_alone_doubles_nothing(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    kafka: tuple[TaskWriter, TopicReader],
    reminders_db: str,
    db: asyncpg.Connection,
) -> None:
    """The chaos suite's duplicates: the first run sent ann's first reminder alone and the
    next two in a digest; it is killed before a snapshot, so the restarted flow replays and
    fires all three again, now in its startup gap, where reminders go out on their own.
    Each reminder must still reach consumers under one event id only."""
    writer, reader = kafka
    flow = start_flow(tmp_path, kafka_settings, reminders_db, snapshot_s=30, digest_window="PT2S")
    try:
        await wait_live(writer, db, flow)

        base = whole_seconds_from_now(3)
        tasks = [uuid.uuid4() for _ in range(3)]
        for n, task in enumerate(tasks):
            due = base + timedelta(milliseconds=300 * n)
            writer.send("task.created", task, user="ann", version=1, due_at=due)
        sentinel = uuid.uuid4()
        sentinel_due = base + timedelta(seconds=12)
        writer.send("task.created", sentinel, user="sol", version=1, due_at=sentinel_due)

        def digest_out(seen: list[Received]) -> bool:
            return any(isinstance(r.value, ReminderDigest) for r in seen)

        before = reader.poll_until(digest_out, timeout=30)
        [first] = [r.value for r in before if isinstance(r.value, TaskReminder)]
        [digest] = [r.value for r in before if isinstance(r.value, ReminderDigest)]
        assert [first.task_id, *(i.task_id for i in digest.items)] == tasks
        flow.kill9()

        flow.env["TASKFLOW_REMINDERS_DIGEST_STARTUP"] = "PT30S"  # production's startup gap
        flow.start()

        def carriers(seen: list[Received]) -> dict[uuid.UUID, list[str | None]]:
            """Per task: the event ids of the messages that carried its reminder."""
            out: dict[uuid.UUID, list[str | None]] = {task: [] for task in tasks}
            for received in seen:
                value = received.value
                if isinstance(value, TaskReminder) and value.task_id in out:
                    out[value.task_id].append(received.event_id)
                elif isinstance(value, ReminderDigest):
                    for item in value.items:
                        out[item.task_id].append(received.event_id)
            return out

        def replayed(seen: list[Received]) -> bool:
            """The sentinel fired, and every reminder went out again after the restart."""
            again = all(len(ids) >= 2 for ids in carriers(seen).values())
            return again and bool(reminders_for(seen, sentinel))

        seen = reader.poll_until(replayed, timeout=60)
        for task, ids in carriers(seen).items():
            assert len(set(ids)) == 1, f"task {task} went out under {set(ids)}"
    finally:
        flow.stop()
