"""Task service fixtures: a migrated database, the app on the real broker, tokens."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from events.kafka import KafkaSettings
from task_api.app import create_app
from task_api.settings import Config, TaskApiSettings
from tests.kafka_helpers import TopicReader
from webapi.auth import AuthSettings, issue_token

SECRET = "integration-test-secret-0123456789abcdef0123456789abcdef0123456789"


async def migrated_task_database(
    create_database: Callable[[str], Awaitable[str]], name: str
) -> str:
    """A fresh task database, migrated with the real `taskflow migrate` code."""
    from task_api.cli import migrate

    url = await create_database(name)
    previous = os.environ.get("TASKFLOW_TASK_API_DATABASE_URL")
    os.environ["TASKFLOW_TASK_API_DATABASE_URL"] = url
    try:
        await migrate()
    finally:
        if previous is None:
            del os.environ["TASKFLOW_TASK_API_DATABASE_URL"]
        else:
            os.environ["TASKFLOW_TASK_API_DATABASE_URL"] = previous
    return url


@pytest.fixture(scope="session")
async def task_db_url(create_database: Callable[[str], Awaitable[str]]) -> str:
    return await migrated_task_database(create_database, "tasks")


@pytest.fixture
def task_config(task_db_url: str, kafka_settings: KafkaSettings) -> Config:
    return Config(
        service=TaskApiSettings(database_url=task_db_url, db_pool_size=5),
        kafka=kafka_settings,
        auth=AuthSettings(jwt_secret=SECRET),
    )


@pytest.fixture
async def app(task_config: Config) -> AsyncIterator[Quart]:
    application = create_app(task_config)
    async with application.test_app():
        yield application


@pytest.fixture
def client(app: Quart) -> Client:
    return app.test_client()


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, user)}"}


@pytest.fixture
def tasks_topic(kafka_settings: KafkaSettings) -> Iterator[TopicReader]:
    reader = TopicReader(kafka_settings, kafka_settings.topics.tasks)
    yield reader
    reader.close()


async def create(client: Client, auth: dict[str, str], **body: Any) -> Any:
    response = await client.post("/api/v1/tasks", json={"title": "t", **body}, headers=auth)
    assert response.status_code == 201, await response.get_data()
    return await response.get_json()
