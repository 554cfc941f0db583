"""The outbox under faults: broker down, relay killed mid-batch, relays racing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from confluent_kafka import Message
from quart.typing import TestClientProtocol as Client

from deploy.broker import ensure_topics, free_port, start_broker
from events.codec import decode
from events.kafka import KafkaSettings
from task_api.app import create_app
from task_api.settings import Config, TaskApiSettings
from tests.integration.task_api.conftest import SECRET
from tests.kafka_helpers import TopicReader
from webapi.auth import AuthSettings

pytestmark = pytest.mark.integration


def assert_per_task_order(messages: list[Message]) -> None:
    """Within each task, first deliveries come in version order.

    A re-send after a crash repeats an event id already seen; consumers apply an id once,
    so order is judged on first occurrences.
    """
    versions: dict[bytes, list[int]] = defaultdict(list)
    seen_ids: set[str] = set()
    for msg in messages:
        event = decode(msg.value())
        if event.id in seen_ids:
            continue
        seen_ids.add(event.id)
        versions[msg.key() or b""].append(event.data.version)  # type: ignore[attr-defined]
    for key, seen in versions.items():
        assert seen == sorted(seen), f"task {key!r} out of order: {seen}"


async def make_changes(client: Client, auth: dict[str, str], tasks: int, updates: int) -> int:
    """Create `tasks` tasks and update each `updates` times; returns events written."""
    for i in range(tasks):
        response = await client.post("/api/v1/tasks", json={"title": f"t{i}"}, headers=auth)
        assert response.status_code == 201
        task_id = (await response.get_json())["id"]
        for n in range(updates):
            patched = await client.patch(
                f"/api/v1/tasks/{task_id}", json={"title": f"t{i}.{n}"}, headers=auth
            )
            assert patched.status_code == 200
    return tasks * (1 + updates)


async def outbox_ids(database_url: str, namespace: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT event_id FROM outbox WHERE topic LIKE $1", namespace + "%")
        return {str(row["event_id"]) for row in rows}
    finally:
        await conn.close()


async def unpublished(database_url: str, namespace: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL AND topic LIKE $1",
                namespace + "%",
            )
        )
    finally:
        await conn.close()


def event_ids(messages: list[Message]) -> list[str]:
    return [decode(m.value()).id for m in messages]


@pytest.fixture
async def api_only(task_db_url: str, kafka_settings: KafkaSettings) -> AsyncIterator[Client]:
    """The API without its in-process relay: events stay in the outbox for a relay process."""
    config = Config(
        service=TaskApiSettings(database_url=task_db_url, run_relay=False, db_pool_size=5),
        kafka=kafka_settings,
        auth=AuthSettings(jwt_secret=SECRET),
    )
    app = create_app(config)
    async with app.test_app():
        yield app.test_client()


@pytest.fixture
def relay_env(task_db_url: str, kafka_settings: KafkaSettings) -> dict[str, str]:
    return {
        **os.environ,
        "TASKFLOW_TASK_API_DATABASE_URL": task_db_url,
        "TASKFLOW_TASK_API_RELAY_BATCH_SIZE": "25",
        "TASKFLOW_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "TASKFLOW_KAFKA_TOPIC_NAMESPACE": kafka_settings.topic_namespace,
        "TASKFLOW_LOG_FORMAT": "text",
    }


@pytest.fixture
def relays(relay_env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`taskflow relay` processes started by a test; all stopped by PID afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def start_relay(
    env: dict[str, str], started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "relay"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started.append(process)
    return process


async def test_kill_9_mid_batch_loses_nothing(
    api_only: Client,
    auth: dict[str, str],
    task_db_url: str,
    kafka_settings: KafkaSettings,
    tasks_topic: TopicReader,
    relay_env: dict[str, str],
    relays: list[subprocess.Popen[bytes]],
) -> None:
    written = await make_changes(api_only, auth, tasks=100, updates=2)
    # Tiny batches keep the relay busy long enough to be killed in the middle of its work.
    first = start_relay({**relay_env, "TASKFLOW_TASK_API_RELAY_BATCH_SIZE": "2"}, relays)
    await tasks_topic.wait_count(1, deadline_s=30)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert await unpublished(task_db_url, kafka_settings.topic_namespace) > 0, (
        "the relay finished before it was killed; the test proved nothing"
    )

    start_relay(relay_env, relays)
    expected = await outbox_ids(task_db_url, kafka_settings.topic_namespace)
    assert len(expected) == written
    messages = await tasks_topic.wait_for(lambda msgs: set(event_ids(msgs)) >= expected, 30)
    messages = await tasks_topic.settle()
    ids = event_ids(messages)
    assert set(ids) == expected  # nothing lost, nothing foreign
    resent = len(ids) - len(set(ids))
    assert resent <= 2  # at most the one batch that was in flight when killed
    assert_per_task_order(messages)
    assert await unpublished(task_db_url, kafka_settings.topic_namespace) == 0


async def test_two_racing_relays_publish_every_row_once(
    api_only: Client,
    auth: dict[str, str],
    task_db_url: str,
    kafka_settings: KafkaSettings,
    tasks_topic: TopicReader,
    relay_env: dict[str, str],
    relays: list[subprocess.Popen[bytes]],
) -> None:
    written = await make_changes(api_only, auth, tasks=100, updates=3)
    start_relay(relay_env, relays)
    start_relay(relay_env, relays)
    await tasks_topic.wait_count(written, deadline_s=40)
    messages = await tasks_topic.settle()
    ids = event_ids(messages)
    assert len(ids) == len(set(ids)) == written
    assert set(ids) == await outbox_ids(task_db_url, kafka_settings.topic_namespace)
    assert_per_task_order(messages)


async def test_broker_down_writes_accepted_and_delivered_in_order_later(
    task_db_url: str, auth: dict[str, str]
) -> None:
    port = free_port()
    broker = start_broker(port, die_with_parent=True)
    settings = KafkaSettings(
        bootstrap=broker.bootstrap, topic_namespace=f"down{port}.", partitions=3
    ).with_extra(**{"message.timeout.ms": "3000"})
    ensure_topics(settings)
    config = Config(
        service=TaskApiSettings(database_url=task_db_url, db_pool_size=5),
        kafka=settings,
        auth=AuthSettings(jwt_secret=SECRET),
    )
    app = create_app(config)
    reader: TopicReader | None = None
    try:
        async with app.test_app():
            client = app.test_client()
            broker.stop()
            started = time.monotonic()
            written = await make_changes(client, auth, tasks=50, updates=3)
            assert written == 200
            # Writes never waited for the broker.
            assert time.monotonic() - started < 30
            # The API stays in service: readiness is its database; Kafka's outage shows
            # as outbox backlog (a metric and an alert), not as a 503 at the ingress.
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert "kafka" not in (await ready.get_json())["checks"]
            metrics = (await (await client.get("/metrics")).get_data()).decode()
            assert "taskflow_outbox_backlog" in metrics

            broker = start_broker(
                port, die_with_parent=True
            )  # Tansu restarts empty, like a wiped dev broker
            ensure_topics(settings)
            reader = TopicReader(settings, settings.topics.tasks)
            expected = await outbox_ids(task_db_url, settings.topic_namespace)
            messages = await reader.wait_for(
                lambda msgs: set(event_ids(msgs)) >= expected, deadline_s=60
            )
            assert len(expected) == 200
            assert set(event_ids(messages)) == expected
            assert_per_task_order(messages)
            await _eventually_ready(client)
    finally:
        if reader is not None:
            reader.close()
        broker.stop()


async def _eventually_ready(client: Client, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while True:
        response = await client.get("/readyz")
        if response.status_code == 200:
            return
        assert time.monotonic() < end, await response.get_data()
        await asyncio.sleep(0.2)


async def test_relay_in_another_process_is_woken_by_notify(
    api_only: Client,
    auth: dict[str, str],
    tasks_topic: TopicReader,
    relay_env: dict[str, str],
    relays: list[subprocess.Popen[bytes]],
) -> None:
    await make_changes(api_only, auth, tasks=1, updates=0)
    # A minute between polls: only a notification can bring the second event quickly.
    start_relay({**relay_env, "TASKFLOW_TASK_API_RELAY_POLL_INTERVAL": "PT60S"}, relays)
    await tasks_topic.wait_count(1, deadline_s=30)  # published at start; now it listens
    started = time.monotonic()
    await make_changes(api_only, auth, tasks=1, updates=0)
    await tasks_topic.wait_count(2, deadline_s=30)
    assert time.monotonic() - started < 30
