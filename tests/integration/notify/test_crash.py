"""kill -9 of the worker process mid-batch: after a restart nothing is lost or doubled."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from deploy.broker import free_port
from events.codec import decode
from events.kafka import KafkaSettings
from tests.integration.notify.conftest import SECRET, Kafka, eventually, task_created

EVENTS = 1500
USERS = 20


def start_worker(notify_db: str, kafka: KafkaSettings, group: str) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "TASKFLOW_NOTIFY_DATABASE_URL": notify_db,
        "TASKFLOW_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TASKFLOW_KAFKA_TOPIC_NAMESPACE": kafka.topic_namespace,
        "TASKFLOW_JWT_SECRET": SECRET,
        "TASKFLOW_NOTIFY_WORKER_GROUP": group,
        "TASKFLOW_NOTIFY_WORKER_SESSION_TIMEOUT_MS": "1000",
        "TASKFLOW_NOTIFY_WORKER_BATCH_SIZE": "25",
        "TASKFLOW_NOTIFY_OUTBOX_GRACE": "PT1S",
        "TASKFLOW_NOTIFY_OUTBOX_SWEEP_INTERVAL": "PT0.5S",
        "TASKFLOW_NOTIFY_RUN_HUB": "false",
        "TASKFLOW_NOTIFY_RUN_DISPATCHER": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "serve", "notify", "--port", str(free_port())],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def killed_and_restarted(
    notify_db: str, kafka: KafkaSettings, group: str, conn: asyncpg.Connection
) -> AsyncIterator[int]:
    """A worker killed (-9) once it stored 100 notifications, then started again; yields
    how many were stored at the kill. The restarted worker is stopped with SIGTERM."""
    worker = start_worker(notify_db, kafka, group)
    try:

        async def started() -> bool:
            return await conn.fetchval("SELECT count(*) FROM notifications") >= 100

        await eventually(started, timeout=30, interval=0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        at_kill: int = await conn.fetchval("SELECT count(*) FROM notifications")
        worker = start_worker(notify_db, kafka, group)
        yield at_kill
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)


async def test_kill_9_mid_batch_loses_and_doubles_nothing(
    notify_db: str, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    for i in range(EVENTS):
        await kafka.produce(task_created(f"u{i % USERS}", f"t{i}"), f"u{i % USERS}")
    await kafka.producer.flush()
    group = f"notify-worker-crash-{time.monotonic_ns()}"
    conn = await asyncpg.connect(notify_db)
    try:
        async with killed_and_restarted(notify_db, kafka_settings, group, conn) as at_kill:
            assert at_kill < EVENTS, "the worker finished before the kill: nothing was tested"
            await _all_stored_and_published(conn, kafka, kafka_settings)
    finally:
        await conn.close()


async def _all_stored_and_published(
    conn: asyncpg.Connection, kafka: Kafka, kafka_settings: KafkaSettings
) -> None:
    """Every event became one notification, seq gap-free per user, all published."""

    async def finished() -> bool:
        done = await conn.fetchval("SELECT count(*) FROM notifications")
        unpublished = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE published_at IS NULL"
        )
        return done == EVENTS and unpublished == 0

    await eventually(finished, timeout=60, interval=0.1)
    rows = await conn.fetch("SELECT user_id, seq, event_id FROM notifications")
    assert len({r["event_id"] for r in rows}) == EVENTS
    seqs: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        seqs[r["user_id"]].append(r["seq"])
    assert all(sorted(s) == list(range(1, len(s) + 1)) for s in seqs.values())
    # Every notification was published at least once (repeats are dropped by seq).
    stored = {(r["user_id"], r["seq"]) for r in rows}

    def published(msgs: list[Any]) -> set[tuple[str, int]]:
        out = set()
        for m in msgs:
            env = decode(m.value())
            out.add((env.user_id, env.data.notification.seq))  # type: ignore[attr-defined]
        return out

    msgs = await kafka.read_async(
        kafka_settings.topics.notifications, EVENTS, 30, lambda got: published(got) >= stored
    )
    assert published(msgs) == stored


async def test_kill_9_around_erasures_completes_each_exactly_once(
    notify_db: str, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    """Erasures in the middle of a stream, the worker killed mid-batch and restarted: the
    erased users keep nothing (their later events included), every other user's events are
    all there, and each erasure is recorded once and announced under one event id."""
    from tests.integration.notify.test_erasure import erased_event, publish_erased

    erased = {"u3": uuid.uuid4(), "u7": uuid.uuid4()}
    for i in range(EVENTS):
        user = f"u{i % USERS}"
        await kafka.produce(task_created(user, f"t{i}"), user)
        if i in (300, 700):  # after some of their events, before others
            victim = "u3" if i == 300 else "u7"
            await publish_erased(kafka, erased_event(victim, erased[victim]))
    await kafka.producer.flush()
    group = f"notify-worker-erase-crash-{time.monotonic_ns()}"
    conn = await asyncpg.connect(notify_db)
    try:
        async with killed_and_restarted(notify_db, kafka_settings, group, conn):
            await _erasures_done_once(conn, kafka, kafka_settings, erased)
    finally:
        await conn.close()


async def _erasures_done_once(
    conn: asyncpg.Connection, kafka: Kafka, kafka_settings: KafkaSettings, erased: dict[str, Any]
) -> None:
    """Erased users keep nothing, everyone else has every event; each erasure is recorded
    once and announced under one event id."""
    kept = EVENTS - sum(1 for i in range(EVENTS) if f"u{i % USERS}" in erased)

    async def finished() -> bool:
        done = await conn.fetchval("SELECT count(*) FROM notifications")
        unannounced = await conn.fetchval(
            "SELECT count(*) FROM erased_users WHERE published_at IS NULL"
        )
        recorded = await conn.fetchval("SELECT count(*) FROM erased_users")
        return done == kept and recorded == len(erased) and unannounced == 0

    await eventually(finished, timeout=90, interval=0.1)
    leftovers = await conn.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = ANY($1::text[])", list(erased)
    )
    assert leftovers == 0
    rows = await conn.fetch("SELECT user_id, erasure_id FROM erased_users")
    assert {r["user_id"]: r["erasure_id"] for r in rows} == erased

    def announced(msgs: list[Any]) -> dict[str, set[str]]:
        ids: dict[str, set[str]] = defaultdict(set)
        for m in msgs:
            env = decode(m.value())
            if env.type == "user.erasure.applied":
                ids[env.data.user_id].add(env.id)  # type: ignore[attr-defined]
        return ids

    msgs = await kafka.read_async(
        kafka_settings.topics.notifications,
        kept,
        30,
        lambda got: set(announced(got)) >= set(erased),
    )
    # A re-send after the crash repeats an event id, never a second erasure.
    assert {user: len(ids) for user, ids in announced(msgs).items()} == dict.fromkeys(erased, 1)
