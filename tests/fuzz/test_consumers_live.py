"""Hypothesis-made bad messages, with a few good ones between them, on the real Tansu topics
with each real consumer running: the DLQ gets exactly the bad ones, with their origin, the
good ones take effect, and the consumer process is still there."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from confluent_kafka import Producer
from hypothesis import strategies as st

from events import dlq
from events.kafka import KafkaSettings
from events.payloads import TaskCreated
from tests.fuzz.messages import (
    Headers,
    collect,
    good_event,
    headers,
    keys,
    task_created,
    undecodable,
)
from tests.integration.audit.support import flow_env, init_recovery, run_flow_to_end
from tests.integration.notify.conftest import SmtpSink, auth, eventually, make_settings, running
from tests.integration.reminders.harness import FlowProcess
from tests.integration.reminders.harness import flow_env as reminders_env
from tests.kafka_helpers import TopicReader

pytestmark = pytest.mark.integration
BAD_COUNT = 30


@dataclass(frozen=True)
class Sent:
    value: bytes | None
    partition: int
    offset: int


Message = tuple[bytes | None, Headers, bytes | None]


def bad_batch() -> list[Message]:
    """Varied bad messages: undecodable values, odd headers and keys (see `collect`).

    Made before a consumer starts: Hypothesis objects to other threads drawing from the
    global `random` while it generates.
    """
    return collect(st.tuples(undecodable, headers, keys), BAD_COUNT)


def produce_mixed(
    kafka: KafkaSettings, topic: str, good: list[TaskCreated], bad: list[Message]
) -> tuple[list[Sent], list[Sent]]:
    """Bad messages with the good ones spread between them, all on partition 0, in order."""
    producer = Producer(kafka.producer())
    sent: list[tuple[bool, bytes | None, list[Sent]]] = []
    errors: list[str] = []
    spacing = len(bad) // (len(good) + 1)
    plan: list[tuple[bool, bytes | None, Headers, bytes | None]] = []
    for i, (value, hdrs, key) in enumerate(bad):
        if good and i % spacing == 0 and i // spacing < len(good):
            task = good[i // spacing]
            plan.append(
                (True, good_event(task, task.user_id), [("ce_type", b"task.created")], None)
            )
        plan.append((False, value, hdrs, key))
    for is_good, value, hdrs, key in plan:
        box: list[Sent] = []

        def done(
            err: object, msg: object, box: list[Sent] = box, value: bytes | None = value
        ) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                box.append(Sent(value, msg.partition(), msg.offset()))  # type: ignore[attr-defined]

        producer.produce(topic, value, key=key, headers=hdrs, partition=0, on_delivery=done)
        sent.append((is_good, value, box))
    assert producer.flush(30) == 0 and not errors, errors[:3]
    good_sent = [box[0] for ok, _, box in sent if ok]
    bad_sent = [box[0] for ok, _, box in sent if not ok]
    return good_sent, bad_sent


async def assert_dead_letters_are(kafka: KafkaSettings, bad: list[Sent], consumer: str) -> None:
    topics = kafka.topics
    reader = TopicReader(kafka, topics.dlq)
    try:
        await reader.wait_count(len(bad), deadline_s=30)
        dead = await reader.settle(quiet_s=1.0)  # and nothing beyond them
    finally:
        reader.close()
    # The DLQ headers come last, so they win over any same-named original header.
    got = sorted(
        (int(dict(m.headers())[dlq.SOURCE_OFFSET]), m.value(), dict(m.headers())) for m in dead
    )
    assert [(offset, value) for offset, value, _ in got] == sorted(
        (s.offset, s.value) for s in bad
    ), "the DLQ must hold exactly the bad messages"
    for _, _, hdrs in got:
        assert hdrs[dlq.SOURCE_TOPIC] == topics.tasks.encode()
        assert hdrs[dlq.SOURCE_PARTITION] == b"0"
        assert hdrs[dlq.CONSUMER].decode().startswith(consumer)


async def test_notification_worker(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings
) -> None:
    users = [f"fuzz-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    good = [task_created(user) for user in users]
    batch = bad_batch()
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        _, bad = await asyncio.to_thread(
            produce_mixed, kafka_settings, kafka_settings.topics.tasks, good, batch
        )

        async def each_user_notified() -> bool:
            for user in users:
                box = (await svc.http.get("/api/v1/notifications", headers=auth(user))).json()
                if box["unread_count"] != 1:
                    return False
            return True

        await eventually(each_user_notified, timeout=30)
        await assert_dead_letters_are(kafka_settings, bad, "notify-worker")
        assert not svc.task.done(), "the service stopped"
        assert (await svc.http.get("/readyz")).status_code == 200


async def test_audit_flow(kafka_settings: KafkaSettings, audit_db: str, tmp_path: Path) -> None:
    good = [task_created(f"fuzz-{i}") for i in range(3)]
    _, bad = produce_mixed(kafka_settings, kafka_settings.topics.tasks, good, bad_batch())
    init_recovery(tmp_path / "recovery")

    # A bounded run (tail=false) that must exit 0: a crash on any message fails it.
    run_flow_to_end(flow_env(kafka_settings, audit_db, tail=False), tmp_path / "recovery", 1, 90)

    conn = await asyncpg.connect(audit_db)
    try:
        stored = await conn.fetch("SELECT event_id FROM audit_entries")
    finally:
        await conn.close()
    assert len(stored) == len(good)
    await assert_dead_letters_are(kafka_settings, bad, "pipelines.audit")


async def test_reminder_flow(
    kafka_settings: KafkaSettings, reminders_db: str, tmp_path: Path
) -> None:
    good = [task_created(f"fuzz-{i}", due_in=timedelta(days=3)) for i in range(3)]
    batch = bad_batch()
    flow = FlowProcess.prepare(tmp_path, reminders_env(kafka_settings, reminders_db))
    flow.start()
    try:
        _, bad = produce_mixed(kafka_settings, kafka_settings.topics.tasks, good, batch)
        conn = await asyncpg.connect(reminders_db)
        try:

            async def all_scheduled() -> bool:
                assert flow.alive(), flow.log.read_text()[-3000:]
                rows = await conn.fetch(
                    "SELECT task_id FROM scheduled_reminder WHERE task_id = ANY($1::uuid[])",
                    [t.id for t in good],
                )
                return len(rows) == len(good)

            await eventually(all_scheduled, timeout=60)
        finally:
            await conn.close()
        await assert_dead_letters_are(kafka_settings, bad, "pipelines.reminders")
        assert flow.alive(), flow.log.read_text()[-3000:]
    finally:
        flow.stop()
