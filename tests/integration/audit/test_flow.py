"""The whole ingest path: Tansu -> `python -m bytewax.run pipelines.audit:flow` -> PostgreSQL."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg

from audit_store.digests import Signer
from audit_store.verify import verify
from deploy.broker import free_port
from events.dlq import SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC
from events.kafka import KafkaSettings
from events.payloads import TaskSnapshotted
from tests.integration.audit.support import (
    Message,
    flow_env,
    init_recovery,
    produce,
    read_topic,
    run_flow_to_end,
    start_flow,
    wait_until,
)
from tests.unit.audit.factories import (
    TRACE_ID,
    event_bytes,
    notification_payload,
    reminder_payload,
    task_payload,
)

SIGNER = Signer("hmac-sha256", "k" * 40, "k1")


def mixed_events(kafka: KafkaSettings, n: int) -> list[Message]:
    """n valid events over the three topics, keyed as the contract says."""
    topics = kafka.topics
    out: list[Message] = []
    for i in range(n):
        user = f"user{i % 7}"
        if i % 5 == 3:
            out.append((topics.reminders, user.encode(), event_bytes(reminder_payload(user), user)))
        elif i % 5 == 4:
            value = event_bytes(notification_payload(user), user)
            out.append((topics.notifications, user.encode(), value))
        else:
            payload = task_payload(user=user, title=f"task number {i}")
            key = str(payload.id).encode()  # type: ignore[attr-defined]
            out.append((topics.tasks, key, event_bytes(payload, user)))
    return out


async def count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM audit_entries"))


async def test_ten_thousand_events_become_ten_thousand_verified_entries(
    kafka_settings: KafkaSettings, audit_db: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    produce(kafka_settings, mixed_events(kafka_settings, 10_000))
    init_recovery(tmp_path / "recovery")

    run_flow_to_end(flow_env(kafka_settings, audit_db, tail=False), tmp_path / "recovery")

    assert await count(pool) == 10_000
    report = await verify(pool, SIGNER)
    assert report.ok, report.as_json()
    assert report.checked == 10_000
    assert report.chains == 9  # 3 topics x 3 partitions, one chain each
    traced = await pool.fetchval("SELECT count(*) FROM audit_entries WHERE trace_id = $1", TRACE_ID)
    assert traced == 10_000


async def test_kill_dash_nine_mid_stream_then_restart_stores_each_event_once(
    kafka_settings: KafkaSettings, audit_db: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    produce(kafka_settings, mixed_events(kafka_settings, 10_000))
    recovery = tmp_path / "recovery"
    init_recovery(recovery)
    env = flow_env(kafka_settings, audit_db, tail=True, TASKFLOW_AUDIT_FLOW_BATCH_SIZE="100")
    proc = start_flow(env, recovery, log=tmp_path / "first.log")
    try:

        async def some_written() -> bool:
            return await count(pool) > 0

        await wait_until(some_written, 60, "the first entries")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    at_kill = await count(pool)
    assert 0 < at_kill < 10_000, "the kill must land mid-stream"

    run_flow_to_end(flow_env(kafka_settings, audit_db, tail=False), recovery)

    assert await count(pool) == 10_000
    dupes = await pool.fetchval(
        "SELECT count(*) FROM (SELECT event_id FROM audit_entries GROUP BY 1 HAVING count(*) > 1) d"
    )
    assert dupes == 0
    report = await verify(pool, SIGNER)
    assert report.ok, report.as_json()
    assert report.checked == 10_000


async def test_duplicates_in_the_input_become_one_entry_each(
    kafka_settings: KafkaSettings, audit_db: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    events = mixed_events(kafka_settings, 1000)
    # A relay re-publishing: the same events again at new offsets, some on another partition.
    produce(kafka_settings, events)
    produce(kafka_settings, events[::3])
    produce(kafka_settings, events[1::7], partition=0)
    init_recovery(tmp_path / "recovery")

    run_flow_to_end(flow_env(kafka_settings, audit_db, tail=False), tmp_path / "recovery")

    assert await count(pool) == 1000
    report = await verify(pool, SIGNER)
    assert report.ok, report.as_json()
    # Every offset was consumed (duplicates included), so the heads show no lag.
    consumed = await pool.fetchval("SELECT sum(last_offset + 1) FROM audit_chain_heads")
    assert consumed == 1000 + len(events[::3]) + len(events[1::7])


async def test_poison_goes_to_the_dlq_with_its_origin_and_the_flow_goes_on(
    kafka_settings: KafkaSettings, audit_db: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    topics = kafka_settings.topics
    unknown = event_bytes(task_payload()).replace(b'"task.created"', b'"task.exploded"')
    nul = event_bytes(task_payload(title="nul \x00 here"))
    poison: list[Message] = [
        (topics.tasks, b"k1", b"not json at all"),
        (topics.tasks, b"k2", unknown),
        (topics.tasks, b"k3", nul),
        (topics.reminders, b"k4", b'{"specversion": "1.0"}'),
        (topics.notifications, b"k5", None),
    ]
    good_before = mixed_events(kafka_settings, 50)
    good_after = mixed_events(kafka_settings, 50)
    produce(kafka_settings, good_before, partition=0)
    produce(kafka_settings, poison, partition=0)
    produce(kafka_settings, good_after, partition=0)
    init_recovery(tmp_path / "recovery")

    run_flow_to_end(flow_env(kafka_settings, audit_db, tail=False), tmp_path / "recovery")

    assert await count(pool) == 100
    dead = read_topic(kafka_settings, topics.dlq, kafka_settings.partitions, len(poison))
    assert len(dead) == len(poison)
    by_key = {m.key(): dict(m.headers()) for m in dead}
    assert by_key[b"k1"][SOURCE_TOPIC] == topics.tasks.encode()
    assert by_key[b"k1"][SOURCE_PARTITION] == b"0"
    assert by_key[b"k2"]["dlq.error"].startswith(b"UnknownEventType")
    assert by_key[b"k3"]["dlq.error"].startswith(b"DecodeError")
    assert {m.value() for m in dead if m.key() == b"k1"} == {b"not json at all"}
    # The good messages produced first to that topic's partition 0 precede it.
    before = sum(1 for topic, _, _ in good_before if topic == topics.tasks)
    assert by_key[b"k1"][SOURCE_OFFSET] == str(before).encode()
    dlq_total = await pool.fetchval("SELECT sum(dlq_count) FROM audit_chain_heads")
    assert dlq_total == len(poison)
    assert (await verify(pool, SIGNER)).ok


async def test_snapshots_are_recorded_and_marked(
    kafka_settings: KafkaSettings, audit_db: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    snap = task_payload(TaskSnapshotted, user="alice")
    produce(kafka_settings, [(kafka_settings.topics.tasks, b"t", event_bytes(snap))])
    produce(kafka_settings, [(kafka_settings.topics.tasks, b"t", event_bytes(task_payload()))])
    init_recovery(tmp_path / "recovery")
    run_flow_to_end(
        flow_env(kafka_settings, audit_db, tail=False), tmp_path / "recovery", workers=1
    )
    rows = await pool.fetch("SELECT type, snapshot FROM audit_entries ORDER BY type")
    assert [(r["type"], r["snapshot"]) for r in rows] == [
        ("task.created", False),
        ("task.snapshot", True),
    ]


async def test_two_processes_share_the_work_and_each_chain_stays_whole(
    kafka_settings: KafkaSettings, audit_db: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    produce(kafka_settings, mixed_events(kafka_settings, 3000))
    recovery = tmp_path / "recovery"
    init_recovery(recovery)
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    env = flow_env(kafka_settings, audit_db, tail=False)
    procs = [
        start_flow(env, recovery, workers=1, log=tmp_path / f"p{i}.log", cluster=(i, addresses))
        for i in range(2)
    ]
    try:
        codes = [proc.wait(120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert codes == [0, 0], [(tmp_path / f"p{i}.log").read_text()[-2000:] for i in range(2)]
    assert await count(pool) == 3000
    report = await verify(pool, SIGNER)
    assert report.ok and report.chains == 9, report.as_json()
