"""Notification-service fixtures: a migrated database, an in-process server (the service default)
running the real app, a real SMTP server (aiosmtpd), Kafka helpers and WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message as EmailMessage
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from confluent_kafka import Consumer, TopicPartition
from quart import Quart

from deploy.broker import free_port
from events.codec import Envelope, encode
from events.kafka import KafkaSettings
from events.payloads import Payload, TaskCreated
from events.producer import AsyncProducer
from notify_ws.app import create_app, service_of
from notify_ws.cli import DEFAULT_SERVER, server_options
from notify_ws.clock import Clock
from notify_ws.db.migrate import migrate
from notify_ws.service import ChannelFactory
from notify_ws.settings import Config, NotifySettings
from runtime.servers import ServerName, serve
from webapi.auth import AuthSettings, issue_token

SECRET = "integration-test-secret-0123456789abcdef"
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


def token(user: str, secret: str = SECRET) -> str:
    return issue_token(secret, user)


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}


@pytest.fixture
async def notify_db(create_database: Callable[[str], Awaitable[str]]) -> str:
    url = await create_database("notify")
    await migrate(url)
    return url


@pytest.fixture
async def db(notify_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(notify_db)
    yield conn
    await conn.close()


class SmtpSink:
    """A real SMTP server that keeps what it receives; stop() and start() on one port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> AsyncIterator[SmtpSink] | Any:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


def make_settings(notify_db: str, smtp_port: int, **overrides: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "database_url": notify_db,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "dispatch_poll_interval": timedelta(milliseconds=50),
        "retry_initial": timedelta(milliseconds=50),
        "retry_max": timedelta(milliseconds=200),
        "retry_jitter": timedelta(milliseconds=20),
        "breaker_threshold": 3,
        "breaker_reset": timedelta(milliseconds=500),
        "max_attempts": 5,
        "channel_timeout": timedelta(seconds=3),
        "outbox_sweep_interval": timedelta(milliseconds=500),
        "outbox_grace": timedelta(seconds=1),
        "ws_ping_interval": None,
        "worker_poll_timeout": timedelta(milliseconds=50),
        "lag_interval": timedelta(seconds=1),
        # Its own group per test: the shared broker must not rebalance across tests.
        "worker_group": f"notify-worker-{uuid.uuid4().hex[:8]}",
        "worker_session_timeout_ms": 1000,
    }
    values.update(overrides)
    return NotifySettings(**values)


@dataclass
class Running:
    app: Quart
    port: int
    config: Config
    stop: asyncio.Event
    task: asyncio.Task[None]
    http: httpx.AsyncClient = field(init=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, user: str, since: int | None = None, tok: str | None = None) -> str:
        url = f"ws://127.0.0.1:{self.port}/ws?token={tok or token(user)}"
        return url if since is None else f"{url}&since={since}"

    def metric(self, name: str, **labels: str) -> float | None:
        registry = service_of(self.app).ctx.metrics.registry
        return registry.get_sample_value(name, labels)


@contextlib.asynccontextmanager
async def running(
    settings: NotifySettings,
    kafka: KafkaSettings,
    clock: Clock | None = None,
    channels: ChannelFactory | None = None,
    server: ServerName = DEFAULT_SERVER,
) -> AsyncIterator[Running]:
    """The real app on `server` (the service's default) on a free port, in this process."""
    config = Config(notify=settings, kafka=kafka, auth=AuthSettings(jwt_secret=SECRET))
    app = create_app(config, clock=clock, channels=channels)
    port = free_port()
    stop = asyncio.Event()

    server_stop = asyncio.Event()

    async def serve_until_stopped() -> None:
        async def trigger() -> None:
            await stop.wait()
            await service_of(app).ctx.hub.shutdown(2.0)
            server_stop.set()

        closer = asyncio.create_task(trigger())
        try:
            await serve(server, app, server_options(settings, "127.0.0.1", port), server_stop)
        finally:
            closer.cancel()

    task = asyncio.create_task(serve_until_stopped())
    run = Running(app, port, config, stop, task)
    run.http = httpx.AsyncClient(base_url=run.base, timeout=10)

    async def up() -> bool:
        if task.done():
            task.result()
        try:
            return (await run.http.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await eventually(up, timeout=30)
        yield run
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await run.http.aclose()


class Kafka:
    """Produce task events and read the notifications / DLQ topics of one test namespace."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.producer = AsyncProducer(settings.producer())

    async def produce(self, payload: Payload, user: str, event_id: str | None = None) -> str:
        envelope = Envelope(
            data=payload, source="/tests", subject=str(getattr(payload, "id", "")), user_id=user,
            **({"id": event_id} if event_id else {}),
        )  # fmt: skip
        topics = self.settings.topics
        topic = (
            topics.tasks
            if payload.event_type.startswith("task.") and payload.event_type != "task.reminder"
            else topics.reminders
        )
        key = str(getattr(payload, "id", user))
        await self.producer.produce(
            topic, encode(envelope), key=key, headers=[("ce_type", payload.event_type.encode())]
        )
        return envelope.id

    async def produce_raw(self, topic: str, value: bytes, key: bytes = b"k") -> None:
        await self.producer.produce(topic, value, key=key)

    def read(
        self,
        topic: str,
        want: int,
        timeout: float = 15.0,
        done: Callable[[list[Any]], bool] | None = None,
    ) -> list[Any]:
        """Read from the start until `want` messages arrived, or `done(messages)` says so."""
        consumer = Consumer(self.settings.consumer(f"test-{uuid.uuid4().hex}"))
        meta = consumer.list_topics(topic, timeout=10)
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if done(out) if done else len(out) >= want:
                    break
                for msg in consumer.consume(500, 0.2):
                    if msg.error() is None:
                        out.append(msg)
        finally:
            consumer.close()
        return out

    async def read_async(
        self,
        topic: str,
        want: int,
        timeout: float = 15.0,
        done: Callable[[list[Any]], bool] | None = None,
    ) -> list[Any]:
        return await asyncio.to_thread(self.read, topic, want, timeout, done)

    async def close(self) -> None:
        await self.producer.close()


@pytest.fixture
async def kafka(kafka_settings: KafkaSettings) -> AsyncIterator[Kafka]:
    k = Kafka(kafka_settings)
    yield k
    await k.close()


def task_created(user: str, title: str = "Buy milk", version: int = 1,
                 task_id: uuid.UUID | None = None) -> TaskCreated:  # fmt: skip
    return TaskCreated(
        id=task_id or uuid.uuid4(), user_id=user, title=title, created_at=T0, updated_at=T0,
        version=version,
    )  # fmt: skip


def frames_of(raw: list[str | bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(r) for r in raw]
