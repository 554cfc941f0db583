"""Erasure through the real dataflow: Tansu -> `bytewax.run pipelines.audit:flow`, killed
with SIGKILL mid-stream and restarted; the erasure happens exactly once."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import asyncpg

from audit_store.digests import Signer
from audit_store.settings import AuditSettings
from audit_store.verify import verify
from events.kafka import KafkaSettings
from events.payloads import UserErased
from tests.integration.audit.support import (
    Message,
    flow_env,
    init_recovery,
    produce,
    run_flow_to_end,
    start_flow,
    wait_until,
)
from tests.integration.audit.test_flow import count, mixed_events
from tests.unit.audit.factories import T0, event_bytes

SIGNER = Signer.from_settings(AuditSettings())


def with_erasure(kafka: KafkaSettings, n: int, user: str) -> list[Message]:
    """n mixed events with `user.erased` of `user` in the middle (keyed by the user), so
    events of the user come both before and after it, on other partitions."""
    events = mixed_events(kafka, n)
    payload = UserErased(
        user_id=user, erasure_id=uuid.uuid4(), requested_at=T0, requested_by="self"
    )
    erasure = (kafka.topics.tasks, user.encode(), event_bytes(payload, user))
    return [*events[: n // 2], erasure, *events[n // 2 :]]


async def test_a_flow_killed_mid_stream_erases_exactly_once_after_restart(
    kafka_settings: KafkaSettings, audit_db: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    total = produce(kafka_settings, with_erasure(kafka_settings, 6000, "user3"))
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
    assert 0 < await count(pool) < total, "the kill must land mid-stream"

    run_flow_to_end(flow_env(kafka_settings, audit_db, tail=False), recovery)
    # And a full replay from the start (a lost recovery store): still once.
    init_recovery(tmp_path / "again")
    run_flow_to_end(flow_env(kafka_settings, audit_db, tail=False), tmp_path / "again")

    entries = await count(pool)
    assert entries == total + 1  # every event once, plus the erasure's own entry
    done = await pool.fetch(
        "SELECT user_id, data::text AS data FROM audit_entries"
        " WHERE type = 'audit.erasure.completed'"
    )
    assert [r["user_id"] for r in done] == ["user3"]
    keys = {
        r["user_id"]: r["wrapped_key"]
        for r in await pool.fetch("SELECT user_id, wrapped_key FROM audit_user_keys")
    }
    assert keys.pop("user3") is None and all(k is not None for k in keys.values())
    words = "SELECT count(*) FROM audit_entries WHERE user_id = $1 AND search @@ 'number'::tsquery"
    assert await pool.fetchval(words, "user3") == 0
    assert await pool.fetchval(words, "user4") > 0
    report = await verify(pool, SIGNER)
    assert report.ok, report.as_json()
