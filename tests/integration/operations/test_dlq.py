"""`taskflow dlq` on the real path: Tansu, `python -m bytewax.run pipelines.audit:flow`,
PostgreSQL. A poison message is dead-lettered by the flow and listed with its origin; a
dead-lettered event replayed three times is stored once."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from audit_store.digests import Signer
from audit_store.verify import verify
from deploy.cli import main
from events.codec import new_event_id
from events.dlq import dlq_headers
from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from tests.integration.audit.support import flow_env, init_recovery, run_flow_to_end
from tests.unit.audit.factories import TRACEPARENT, event_bytes, task_payload

SIGNER = Signer("hmac-sha256", "k" * 40, "k1")


async def taskflow(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run `taskflow ARGV` as an operator would (in-process, off the test's loop); its
    stdout lines."""
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out.splitlines()


async def listed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in await taskflow(["dlq", "list", "--json"], capsys)]


async def run_audit_flow(kafka: KafkaSettings, database_url: str, recovery: Path) -> None:
    """One bounded run of the real flow from its recovery store to the end of the topics."""
    env = flow_env(kafka, database_url, tail=False)
    await asyncio.to_thread(run_flow_to_end, env, recovery, 1)


async def test_poison_is_listed_with_its_origin_and_replays_never_double_an_effect(
    kafka_settings: KafkaSettings,
    audit_db: str,
    pool: asyncpg.Pool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = kafka_settings.topics
    # The CLI reads its Kafka settings from the environment, as in a deployment.
    monkeypatch.setenv("TASKFLOW_KAFKA_BOOTSTRAP", kafka_settings.bootstrap)
    monkeypatch.setenv("TASKFLOW_KAFKA_TOPIC_NAMESPACE", kafka_settings.topic_namespace)
    recovery = tmp_path / "recovery"
    init_recovery(recovery)
    producer = AsyncProducer(kafka_settings.producer())
    try:
        poison = await producer.produce(topics.tasks, b"not a cloudevent", key=b"poison")
        kept = task_payload(title="stored at once")
        await producer.produce(topics.tasks, event_bytes(kept), key=str(uuid.uuid4()).encode())
        await run_audit_flow(kafka_settings, audit_db, recovery)

        (dead,) = await listed(capsys)
        assert dead["topic"] == topics.tasks
        assert (dead["partition"], dead["offset"]) == (poison.partition(), poison.offset())
        assert dead["consumer"] == "pipelines.audit"
        assert dead["error"].startswith("DecodeError")
        assert dead["key"] == "poison" and dead["when"] is not None

        # An event a consumer gave up on (say its store was down), dead-lettered as every
        # consumer does: the original message plus the origin headers.
        event_id = new_event_id()
        lost = task_payload(title="dead-lettered once")
        original = [("traceparent", TRACEPARENT.encode()), ("ce_type", b"task.created")]
        origin = dlq_headers(topics.tasks, 1, 99, "pipelines.audit", "PoolTimeout: db down")
        await producer.produce(
            topics.dlq,
            event_bytes(lost, event_id=event_id),
            key=event_id,
            headers=original + origin,
        )
    finally:
        await producer.close()

    letters = {d["offset"]: d for d in await listed(capsys)}
    assert set(letters) == {poison.offset(), 99}
    lost_id = letters[99]["id"]
    assert await taskflow(["dlq", "list", "--topic", topics.reminders], capsys) == []

    first = await taskflow(["dlq", "replay", lost_id], capsys)
    assert first[0].startswith(f"replayed {lost_id} -> {topics.tasks}[")
    assert first[-1] == "replayed 1 dead letters"
    await taskflow(["dlq", "replay", lost_id], capsys)  # an operator repeating themselves
    everything = await taskflow(["dlq", "replay", "--all", "--topic", topics.tasks], capsys)
    assert everything[-1] == "replayed 2 dead letters"
    await run_audit_flow(kafka_settings, audit_db, recovery)

    stored = await pool.fetchval("SELECT count(*) FROM audit_entries WHERE event_id = $1", event_id)
    assert stored == 1, "three replays of one event must make one entry"
    assert await pool.fetchval("SELECT count(*) FROM audit_entries") == 2
    report = await verify(pool, SIGNER)
    assert report.ok, report.as_json()
    # The replayed poison is still poison: dead-lettered again, from where it was replayed.
    again = [d for d in await listed(capsys) if d["key"] == "poison"]
    assert len(again) == 2 and again[1]["offset"] != poison.offset()
    assert again[1]["topic"] == topics.tasks
