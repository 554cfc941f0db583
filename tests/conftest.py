"""Session-wide real components: PostgreSQL (CI's server or an embedded one) and Tansu.

Each test session gets fresh databases (dropped afterwards); each test gets its own topic
namespace, so tests on the one session broker never see each other's messages.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from deploy.broker import LocalBroker, ensure_topics, start_broker
from deploy.database import server_url, start_embedded
from events.kafka import KafkaSettings
from runtime.database import drop_database, ensure_database

SESSION_TAG = uuid.uuid4().hex[:8]

# The tests check that every sampled trace is whole, across processes too (children inherit
# this): record them all. The shipped default ratio (0.1) has its own unit test.
os.environ.setdefault("OTEL_TRACES_SAMPLER_ARG", "1.0")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """Admin URL of the test PostgreSQL server."""
    url = os.environ.get("TASKFLOW_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="taskflow-pg-") as tmp:
        server = start_embedded(Path(tmp) / "pgdata")
        try:
            yield server_url(server)
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
async def create_database(pg_admin_url: str) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Factory: a fresh database named after `purpose`, dropped at session end."""
    created: list[str] = []

    async def create(purpose: str) -> str:
        name = f"tf_{purpose}_{SESSION_TAG}_{len(created)}"
        created.append(name)
        return await ensure_database(pg_admin_url, name)

    yield create
    for name in created:
        await drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """One Tansu broker for the whole session, stopped by PID at the end."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    local = start_broker(log_file=log, die_with_parent=True)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def kafka_settings(broker: LocalBroker) -> KafkaSettings:
    """Kafka settings with a per-test topic namespace; the topics exist already."""
    settings = KafkaSettings(
        bootstrap=broker.bootstrap, topic_namespace=f"t{uuid.uuid4().hex[:10]}.", partitions=3
    )
    ensure_topics(settings)
    return settings
