"""Probes of real services (issue 13, items 3 and 4).

Liveness with a dead or hung loop: the task service's outbox relay is wedged or killed
through its producer seam; /healthz answers 503 naming it while /readyz stays 200.
Readiness with the broker frozen: on a Tansu broker of its own, SIGSTOPped, the task,
reminder and audit APIs stay ready and a task is still created (its event waits in the
outbox and is published after SIGCONT).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from audit_store.app import create_app as create_audit_app
from audit_store.db.migrate import migrate as migrate_audit
from audit_store.settings import AuditSettings
from deploy.broker import LocalBroker, ensure_topics, start_broker
from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from reminders.app import create_app as create_reminders_app
from reminders.db.migrate import migrate_url as migrate_reminders
from reminders.settings import ReminderSettings
from task_api.app import RELAY_TASK
from task_api.app import create_app as create_task_app
from task_api.settings import Config, TaskApiSettings
from tests.integration.task_api.conftest import migrated_task_database
from webapi.auth import AuthSettings, issue_token

pytestmark = pytest.mark.integration

SECRET = "probe-test-secret-0123456789abcdef0123456789abcdef0123456789abcdef"
DEADLINE = 30.0  # seconds any awaited state gets before the test fails


async def eventually(
    probe: Callable[[], Awaitable[bool]], what: str, timeout: float = DEADLINE
) -> None:
    """Poll `probe` until it holds (no fixed sleeps: a short pause between polls)."""
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def task_db(create_database: Callable[[str], Awaitable[str]]) -> str:
    return await migrated_task_database(create_database, "probes_tasks")


# ---- liveness: a wedged or dead relay -------------------------------------------------


class LoopCrash(BaseException):
    """A failure no retry catches (as a bug escaping `except Exception` would be)."""


class WedgedProducer:
    """A producer whose first call never returns, whatever timeout it was given (a wedged
    client); `release()` lets it go so the app can shut down."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.entered = asyncio.Event()
        self.fatal_error = None

    async def warm_up(self, topic: str, timeout: float = 10.0) -> None:
        self.entered.set()
        await self.released.wait()

    def abandon(self) -> None:
        self.released.set()

    async def close(self, timeout: float = 10.0) -> None:
        self.released.set()


def fast_relay(task_db: str, kafka: KafkaSettings) -> Config:
    """A relay allowed one second of silence (its waits are all shorter than that)."""
    return Config(
        service=TaskApiSettings(
            database_url=task_db,
            db_pool_size=2,
            relay_poll_interval=timedelta(milliseconds=200),
            relay_delivery_timeout=timedelta(milliseconds=300),
            relay_max_backoff=timedelta(milliseconds=100),
            relay_max_silence=timedelta(seconds=1),
        ),
        kafka=kafka,
        auth=AuthSettings(jwt_secret=SECRET),
    )


async def status(client: Client, path: str) -> int:
    return (await client.get(path)).status_code


async def test_a_hung_relay_fails_liveness_not_readiness(
    task_db: str, kafka_settings: KafkaSettings
) -> None:
    healthy: list[bool] = []
    wedged = WedgedProducer()
    app = create_task_app(
        fast_relay(task_db, kafka_settings), producer_factory=lambda: cast(AsyncProducer, wedged)
    )
    async with app.test_app():
        client = app.test_client()
        await asyncio.wait_for(wedged.entered.wait(), DEADLINE)
        healthy.append(await status(client, "/healthz") == 200)  # within its allowed silence

        async def stale() -> bool:
            return await status(client, "/healthz") == 503

        await eventually(stale, "/healthz names the silent relay")
        response = await client.get("/healthz")
        problem = await response.get_json()
        assert response.content_type == "application/problem+json"
        assert [e["field"] for e in problem["errors"]] == [RELAY_TASK]
        assert problem["errors"][0]["message"].startswith("silent for ")
        assert await status(client, "/readyz") == 200  # it can still serve its requests
        wedged.released.set()

        async def live_again() -> bool:
            return await status(client, "/healthz") == 200

        # Released, the relay polls its (empty) outbox again and beats every round.
        await eventually(live_again, "the relay beats again once unwedged")
    assert healthy == [True]


async def test_a_dead_relay_fails_liveness_naming_it(
    task_db: str, kafka_settings: KafkaSettings
) -> None:
    def crashing_factory() -> AsyncProducer:
        raise LoopCrash("producer construction blew up")

    app = create_task_app(fast_relay(task_db, kafka_settings), producer_factory=crashing_factory)
    async with app.test_app():
        client = app.test_client()

        async def dead() -> bool:
            return await status(client, "/healthz") == 503

        await eventually(dead, "/healthz names the dead relay")
        problem = await (await client.get("/healthz")).get_json()
        assert problem["errors"] == [
            {"field": RELAY_TASK, "message": "died (LoopCrash: producer construction blew up)"}
        ]
        assert await status(client, "/readyz") == 200


# ---- readiness: the broker frozen -----------------------------------------------------


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A Tansu broker for this test alone (it gets SIGSTOPped), stopped by PID after."""
    broker = start_broker(log_file=tmp_path / "tansu.log", die_with_parent=True)
    try:
        yield broker
    finally:
        broker.thaw()  # SIGCONT first: a stopped process would not handle SIGTERM
        broker.stop()


@pytest.fixture
def own_kafka(own_broker: LocalBroker) -> KafkaSettings:
    settings = KafkaSettings(
        bootstrap=own_broker.bootstrap, topic_namespace=f"t{uuid.uuid4().hex[:10]}.", partitions=3
    )
    ensure_topics(settings)
    return settings


@pytest.fixture
async def apps(
    task_db: str, create_database: Callable[[str], Awaitable[str]], own_kafka: KafkaSettings
) -> AsyncIterator[dict[str, Quart]]:
    """The task, reminder and audit APIs, each with Kafka configured on the own broker."""
    reminders_db = await create_database("probes_reminders")
    await migrate_reminders(reminders_db)
    audit_db = await create_database("probes_audit")
    await migrate_audit(audit_db)
    auth = AuthSettings(jwt_secret=SECRET)
    built = {
        "task": create_task_app(
            Config(
                service=TaskApiSettings(database_url=task_db, db_pool_size=2),
                kafka=own_kafka,
                auth=auth,
            )
        ),
        "reminders": create_reminders_app(
            ReminderSettings(database_url=reminders_db), auth=auth, kafka=own_kafka
        ),
        "audit": create_audit_app(AuditSettings(database_url=audit_db), auth, own_kafka),
    }
    running: list[Any] = []
    try:
        for app in built.values():
            running.append(app.test_app())
            await running[-1].__aenter__()
        yield built
    finally:
        for context in reversed(running):
            await context.__aexit__(None, None, None)


async def outbox_state(task_db: str, task_id: str) -> list[bool]:
    """published? for each outbox row of task `task_id`."""
    conn = await asyncpg.connect(task_db)
    try:
        rows = await conn.fetch(
            "SELECT published_at IS NOT NULL AS published FROM outbox WHERE key = $1",
            task_id,
        )
    finally:
        await conn.close()
    return [row["published"] for row in rows]


async def test_apis_stay_ready_and_writes_go_on_with_the_broker_frozen(
    apps: dict[str, Quart], own_broker: LocalBroker, task_db: str
) -> None:
    clients = {name: app.test_client() for name, app in apps.items()}
    for name, client in clients.items():
        assert await status(client, "/readyz") == 200, name
    auth = {"Authorization": f"Bearer {issue_token(SECRET, 'frozen-broker-user')}"}

    own_broker.freeze()
    try:
        for name, client in clients.items():
            response = await client.get("/readyz")
            assert response.status_code == 200, (name, await response.get_data())
            assert await status(client, "/healthz") == 200, name
        created = await clients["task"].post(
            "/api/v1/tasks", json={"title": "written while Kafka is frozen"}, headers=auth
        )
        assert created.status_code == 201, await created.get_data()
        task_id = (await created.get_json())["id"]
        assert await outbox_state(task_db, task_id) == [False]  # held, not lost
        assert await status(clients["task"], "/readyz") == 200
    finally:
        own_broker.thaw()

    async def published() -> bool:
        return await outbox_state(task_db, task_id) == [True]

    # The relay's produce to a frozen broker times out (15 s) and is retried: allow that.
    await eventually(published, "the held event published after SIGCONT", timeout=90)
