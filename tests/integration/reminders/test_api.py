"""The read API against the real PostgreSQL read model (and the real broker for /readyz)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from deploy.broker import free_port
from events.kafka import KafkaSettings
from reminders.app import create_app
from reminders.db.migrate import apply_migrations
from reminders.db.store import LogEntry, ScheduleChange, write_batch
from reminders.domain.clock import FakeClock
from reminders.domain.schedule import Scheduled
from reminders.settings import ReminderSettings
from webapi.auth import AuthSettings, issue_token

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SECRET = "reminder-test-secret-reminder-test-secret"


def token(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, user)}"}


async def make_app(db_url: str, kafka: KafkaSettings) -> Quart:
    return create_app(
        ReminderSettings(database_url=db_url),
        auth=AuthSettings(jwt_secret=SECRET),
        kafka=kafka,
        clock=FakeClock(NOW),
    )


@pytest.fixture
async def client(reminders_db: str, kafka_settings: KafkaSettings) -> AsyncIterator[Client]:
    app = await make_app(reminders_db, kafka_settings)
    async with app.test_app() as test_app:
        yield test_app.test_client()


def change(task: int, user: str, *hours: int) -> ScheduleChange:
    due = NOW + timedelta(hours=max(hours) + 1)
    return ScheduleChange(
        str(uuid.UUID(int=task)),
        user,
        tuple(Scheduled(NOW + timedelta(hours=h), "before", due) for h in hours),
    )


async def test_lists_own_upcoming_reminders_only(client: Client, db: asyncpg.Connection) -> None:
    await write_batch(db, [change(1, "alice", -1, 1, 2), change(2, "bob", 1)], [])
    response = await client.get("/api/v1/reminders", headers=token())
    assert response.status_code == 200
    body = await response.get_json()
    assert body["next_cursor"] is None
    assert [(i["task_id"], i["remind_at"]) for i in body["items"]] == [
        (str(uuid.UUID(int=1)), "2026-01-05T10:00:00Z"),
        (str(uuid.UUID(int=1)), "2026-01-05T11:00:00Z"),
    ]
    assert body["items"][0]["kind"] == "before"
    assert body["items"][0]["due_at"] == "2026-01-05T12:00:00Z"


async def test_from_to_window_and_offsets(client: Client, db: asyncpg.Connection) -> None:
    await write_batch(db, [change(1, "alice", -3, 1, 2, 5)], [])
    response = await client.get(
        "/api/v1/reminders",
        query_string={"from": "2026-01-05T09:30:00+02:00", "to": "2026-01-05T11:00:00Z"},
        headers=token(),
    )
    body = await response.get_json()
    assert [i["remind_at"] for i in body["items"]] == ["2026-01-05T10:00:00Z"]
    # An unencoded "+" arrives as a space; still read as an offset.
    response = await client.get(
        "/api/v1/reminders?from=2026-01-05T04:00:00+00:00&to=2026-01-05T07:00:00Z",
        headers=token(),
    )
    assert [i["remind_at"] for i in (await response.get_json())["items"]] == [
        "2026-01-05T06:00:00Z"
    ]


async def test_keyset_paging_is_stable_under_inserts(
    client: Client, db: asyncpg.Connection
) -> None:
    await write_batch(db, [change(t, "alice", t) for t in range(1, 6)], [])
    first = await (await client.get("/api/v1/reminders?limit=2", headers=token())).get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    # An earlier reminder inserted between pages does not shift the next page.
    await write_batch(db, [change(9, "alice", 1)], [])
    second = await (
        await client.get(
            "/api/v1/reminders",
            query_string={"limit": "2", "cursor": first["next_cursor"]},
            headers=token(),
        )
    ).get_json()
    third = await (
        await client.get(
            "/api/v1/reminders",
            query_string={"limit": "2", "cursor": second["next_cursor"]},
            headers=token(),
        )
    ).get_json()
    tasks = [i["task_id"] for i in first["items"] + second["items"] + third["items"]]
    # Nothing skipped, nothing repeated; the row inserted behind the cursor is not replayed.
    assert tasks == [str(uuid.UUID(int=t)) for t in (1, 2, 3, 4, 5)]
    assert third["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-01-05T10:00:00"}, "from"),
        ({"to": "tomorrow"}, "to"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"colour": "red"}, "colour"),
        ({"from": "2026-01-05T10:00:00Z", "to": "2026-01-05T09:00:00Z"}, "to"),
    ],
)
async def test_bad_queries_are_422_naming_the_field(
    client: Client, query: dict[str, str], field: str
) -> None:
    response = await client.get("/api/v1/reminders", query_string=query, headers=token())
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    body = await response.get_json()
    assert field in [error["field"] for error in body["errors"]]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {issue_token('x' * 40, 'alice')}"},
        {"Authorization": f"Bearer {issue_token(SECRET, 'alice', ttl=timedelta(seconds=-5))}"},
    ],
)
async def test_bad_tokens_are_401(client: Client, headers: dict[str, str]) -> None:
    response = await client.get("/api/v1/reminders?limit=0", headers=headers)  # 401 wins
    assert response.status_code == 401
    assert (await response.get_json())["status"] == 401


async def test_probes_and_openapi(client: Client) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, await ready.get_data()
    spec = await (await client.get("/openapi.json")).get_json()
    assert "/api/v1/reminders" in spec["paths"]


async def test_readyz_does_not_depend_on_kafka(reminders_db: str) -> None:
    # A broker outage must not take the read API out of service: it serves the database.
    app = await make_app(reminders_db, KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}"))
    async with app.test_app() as test_app:
        response = await test_app.test_client().get("/readyz")
        assert response.status_code == 200
        assert (await response.get_json())["checks"] == {"database": "ok"}


async def test_metrics_count_once_under_replay(client: Client, db: asyncpg.Connection) -> None:
    log = [
        LogEntry("r1", "fired", 0.02),
        LogEntry("r2", "fired", 0.4),
        LogEntry("d1", "digest"),
        LogEntry("r3", "held"),
        LogEntry("dlq/t/0/5", "dlq"),
    ]
    await write_batch(db, [change(1, "alice", 1, 2)], log)
    await write_batch(db, [], log)  # Bytewax replay after a crash: no double counting
    text = await (await client.get("/metrics")).get_data(as_text=True)
    metrics = _samples(text)
    assert metrics["taskflow_reminders_pending"] == 2
    assert metrics["taskflow_reminders_fired_total"] == 2
    assert metrics["taskflow_reminders_digest_total"] == 1
    assert metrics["taskflow_reminders_dlq_total"] == 1
    assert metrics['taskflow_reminders_lateness_seconds_bucket{le="0.025"}'] == 1
    assert metrics['taskflow_reminders_lateness_seconds_bucket{le="0.5"}'] == 2
    assert metrics['taskflow_reminders_lateness_seconds_bucket{le="+Inf"}'] == 2
    assert metrics["taskflow_reminders_lateness_seconds_sum"] == pytest.approx(0.42)


async def test_migrations_are_idempotent(db: asyncpg.Connection) -> None:
    assert await apply_migrations(db) == []


def _samples(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out
