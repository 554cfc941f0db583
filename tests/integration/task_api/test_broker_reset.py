"""After an empty local broker: recent events are re-sent, then every open task's snapshot."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from confluent_kafka import Message
from quart.typing import TestClientProtocol as Client

from events.codec import decode
from events.kafka import KafkaSettings
from task_api.cli import republish_snapshots
from tests.integration.task_api.conftest import create
from tests.kafka_helpers import TopicReader


@pytest.fixture
def cli_env(task_db_url: str, kafka_settings: KafkaSettings) -> Iterator[None]:
    names = {
        "TASKFLOW_TASK_API_DATABASE_URL": task_db_url,
        "TASKFLOW_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "TASKFLOW_KAFKA_TOPIC_NAMESPACE": kafka_settings.topic_namespace,
    }
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


async def test_republish_resends_recent_events_then_snapshots(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader, cli_env: None
) -> None:
    open_task = await create(client, auth, title="open")
    done = await create(client, auth, title="done")
    await client.post(f"/api/v1/tasks/{done['id']}/complete", headers=auth)
    first = await tasks_topic.wait_count(3)
    first_ids = [decode(m.value()).id for m in first]

    mine = {open_task["id"], done["id"]}

    def resent_and_snapshotted(msgs: list[Message]) -> bool:
        later = [decode(m.value()) for m in msgs[3:]]
        ids = {e.id for e in later}
        return set(first_ids) <= ids and any(
            e.type == "task.snapshot" and e.subject == open_task["id"] for e in later
        )

    # The app's own relay is still running: it publishes what the CLI queues. The session
    # database holds other tests' open tasks too, so there are at least our one.
    assert await republish_snapshots() >= 1
    await tasks_topic.wait_for(resent_and_snapshotted)
    again = [decode(m.value()) for m in (await tasks_topic.settle())[3:]]
    ours = [e for e in again if e.subject in mine]
    assert sorted(e.id for e in ours if e.type != "task.snapshot") == sorted(first_ids)
    # Only the open task is snapshotted, after the re-sent events of that task.
    assert [e.subject for e in ours if e.type == "task.snapshot"] == [open_task["id"]]
    order = [e.type for e in ours if e.subject == open_task["id"]]
    assert order == ["task.created", "task.snapshot"]
