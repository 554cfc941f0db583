"""The audit HTTP API on the real PostgreSQL: isolation, filters, paging, export, verify."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from quart.typing import TestClientProtocol as Client

from audit_store.app import create_app
from audit_store.ingest import ChainWriter
from audit_store.settings import AuditSettings
from events.payloads import TaskUpdated
from tests.integration.audit.support import ListDeadLetters, records
from tests.unit.audit.factories import T0, event_bytes, notification_payload, task_payload
from webapi.auth import AuthSettings, issue_token

SECRET = "s" * 40
ALICE_TASK = uuid.UUID("01900000-0000-7000-8000-00000000a11c")


def token(user: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, user, roles)}"}


ALICE, BOB, OPS = token("alice"), token("bob"), token("ops", "operator")


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now


def seed() -> list[tuple[bytes, str]]:
    """alice: 12 task events (4 on ALICE_TASK, about groceries); bob: 6 tasks, 3 notices."""
    out = [
        (event_bytes(task_payload(user="alice", title=f"walk the dog {i}"), "alice"), "alice")
        for i in range(8)
    ]
    out += [
        (
            event_bytes(
                task_payload(TaskUpdated, "alice", ALICE_TASK, f"groceries {i}", i + 1), "alice"
            ),
            "alice",
        )
        for i in range(4)
    ]
    out += [
        (event_bytes(task_payload(user="bob", title=f"bob {i}"), "bob"), "bob") for i in range(6)
    ]
    out += [(event_bytes(notification_payload("bob"), "bob"), "bob") for _ in range(3)]
    return out


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(audit_db: str, pool: asyncpg.Pool, clock: Clock) -> AsyncIterator[Client]:
    await ChainWriter(pool, ListDeadLetters(), clock).write(records(seed()))
    settings = AuditSettings(
        database_url=audit_db,
        retention_days={"task.": 30, "notification.": 10, "audit.": 3650},
        retention_default_days=None,
    )
    app = create_app(settings, AuthSettings(jwt_secret=SECRET), None, clock, background=False)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def get_json(client: Client, path: str, headers: dict[str, str]) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, await response.get_data()
    return orjson.loads(await response.get_data())


async def all_pages(client: Client, query: str, headers: dict[str, str]) -> list[Any]:
    items: list[Any] = []
    url = f"/api/v1/audit?{query}"
    for _ in range(100):
        page = await get_json(client, url, headers)
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        url = f"/api/v1/audit?{query.split('&cursor=')[0]}&cursor={page['next_cursor']}"
    raise AssertionError("paging did not end")


async def test_a_user_sees_only_their_own_entries(client: Client) -> None:
    alice = await all_pages(client, "limit=5", ALICE)
    bob = await all_pages(client, "limit=5", BOB)
    assert len(alice) == 12 and {e["user_id"] for e in alice} == {"alice"}
    assert len(bob) == 9 and {e["user_id"] for e in bob} == {"bob"}
    response = await client.get("/api/v1/audit?user_id=bob", headers=ALICE)
    assert response.status_code == 403
    assert response.content_type == "application/problem+json"


async def test_an_operator_sees_everything_and_filters_by_user(client: Client) -> None:
    everything = await all_pages(client, "limit=200", OPS)
    assert len(everything) == 21
    bob = await all_pages(client, "user_id=bob", OPS)
    assert len(bob) == 9


async def test_entries_have_the_contract_fields(client: Client) -> None:
    entry = (await get_json(client, "/api/v1/audit?limit=1", ALICE))["items"][0]
    for name in (
        "event_id",
        "type",
        "source",
        "subject",
        "user_id",
        "occurred_at",
        "recorded_at",
        "data",
        "trace_id",
        "hash",
        "prev_hash",
    ):
        assert name in entry
    assert isinstance(entry["data"], dict) and entry["data"]["user_id"] == "alice"
    assert entry["snapshot"] is False


async def test_keyset_paging_is_stable_under_inserts(
    client: Client, pool: asyncpg.Pool, clock: Clock
) -> None:
    first = await get_json(client, "/api/v1/audit?limit=5", ALICE)
    more = [(event_bytes(task_payload(user="alice"), "alice"), "alice") for _ in range(3)]
    await ChainWriter(pool, ListDeadLetters(), clock).write(records(more, first_offset=100))
    rest = await all_pages(client, f"limit=5&cursor={first['next_cursor']}", ALICE)
    assert len(rest) == 7
    ids = [e["event_id"] for e in first["items"] + rest]
    assert len(ids) == len(set(ids)) == 12  # the new entries sort before page one


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("type=task.updated", 4),
        ("type=task.", 12),
        ("type=task", 0),
        (f"task_id={ALICE_TASK}", 4),
        ("q=groceries", 4),
        ("q=dog", 8),
        ("q=dog%20OR%20groceries", 12),
        ("from=2026-01-01T00:00:00%2B00:00&to=2026-01-01T00:00:00.000001Z", 12),
        ("from=2026-01-02T00:00:00Z", 0),
    ],
)
async def test_filters(client: Client, query: str, expected: int) -> None:
    assert len(await all_pages(client, query, ALICE)) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-01-01T00:00:00", "from"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=nonsense", "cursor"),
    ],
)
async def test_bad_queries_are_422_naming_the_field(client: Client, query: str, field: str) -> None:
    response = await client.get(f"/api/v1/audit?{query}", headers=ALICE)
    assert response.status_code == 422
    body = orjson.loads(await response.get_data())
    assert [e["field"] for e in body["errors"]] == [field]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer nope",
        f"Bearer {issue_token('w' * 40, 'alice')}",
        f"Bearer {issue_token(SECRET, 'alice', ttl=timedelta(seconds=-30))}",
        f"Basic {issue_token(SECRET, 'alice')}",
    ],
    ids=["missing", "garbage", "wrong-secret", "expired", "wrong-scheme"],
)
async def test_auth_is_required(client: Client, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/api/v1/audit", headers=headers)
    assert response.status_code == 401


async def test_export_jsonl_and_csv_with_filters(client: Client) -> None:
    response = await client.get("/api/v1/audit/export?format=jsonl&user_id=bob", headers=OPS)
    assert response.status_code == 200
    assert response.content_type == "application/jsonl"
    lines = [orjson.loads(line) for line in (await response.get_data()).splitlines()]
    assert len(lines) == 9 and {e["user_id"] for e in lines} == {"bob"}

    response = await client.get("/api/v1/audit/export?format=csv&type=notification.", headers=OPS)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO((await response.get_data()).decode())))
    assert len(rows) == 3
    assert {r["type"] for r in rows} == {"notification.created"}
    assert orjson.loads(rows[0]["data"])["user_id"] == "bob"

    assert (await client.get("/api/v1/audit/export", headers=ALICE)).status_code == 403
    bad = await client.get("/api/v1/audit/export?format=xml", headers=OPS)
    assert bad.status_code == 422


async def test_verify_is_for_operators_and_passes(client: Client) -> None:
    assert (await client.get("/api/v1/audit/verify", headers=ALICE)).status_code == 403
    report = await get_json(client, "/api/v1/audit/verify", OPS)
    assert report == report | {"ok": True, "checked": 21, "first_bad": None}


async def test_purge_respects_legal_holds_is_audited_and_still_verifies(
    client: Client, clock: Clock
) -> None:
    hold = await client.post("/api/v1/audit/holds", json={"user_id": "bob"}, headers=OPS)
    assert hold.status_code == 201
    task_hold = await client.post(
        "/api/v1/audit/holds", json={"task_id": str(ALICE_TASK), "reason": "case 7"}, headers=OPS
    )
    assert task_hold.status_code == 201
    clock.now += timedelta(days=31)

    result = await client.post("/api/v1/audit/purge", headers=OPS)
    body = orjson.loads(await result.get_data())
    assert (body["purged"], body["held"]) == (8, 13)  # alice's 8 go; bob's 9 + 4 on the task stay

    assert len(await all_pages(client, "", ALICE)) == 4
    assert len(await all_pages(client, "", BOB)) == 9
    purges = await all_pages(client, "type=audit.purged", OPS)
    assert len(purges) == 1 and purges[0]["data"]["purged"] == 8
    report = await get_json(client, "/api/v1/audit/verify", OPS)
    assert report["ok"] and report["tombstones"] == 8, report

    released = await client.delete("/api/v1/audit/holds?user_id=bob", headers=OPS)
    assert released.status_code == 204
    body = orjson.loads(await (await client.post("/api/v1/audit/purge", headers=OPS)).get_data())
    assert (body["purged"], body["held"]) == (9, 4)
    assert len(await all_pages(client, "", BOB)) == 0
    report = await get_json(client, "/api/v1/audit/verify", OPS)
    assert report["ok"] and report["tombstones"] == 17, report
    hold_events = await all_pages(client, "type=audit.hold.", OPS)
    assert len(hold_events) == 3


async def test_hold_requests_are_validated(client: Client) -> None:
    both = await client.post(
        "/api/v1/audit/holds", json={"user_id": "a", "task_id": "b"}, headers=OPS
    )
    extra = await client.post("/api/v1/audit/holds", json={"user_id": "a", "x": 1}, headers=OPS)
    assert (both.status_code, extra.status_code) == (422, 422)
    errors = orjson.loads(await extra.get_data())["errors"]
    assert errors == [{"field": "x", "message": "unknown field"}]
    assert (
        await client.post("/api/v1/audit/holds", json={"user_id": "a"}, headers=ALICE)
    ).status_code == 403
    gone = await client.delete(f"/api/v1/audit/holds/{uuid.uuid4()}", headers=OPS)
    assert gone.status_code == 404
    again = await client.post("/api/v1/audit/holds", json={"user_id": "a"}, headers=OPS)
    same = await client.post("/api/v1/audit/holds", json={"user_id": "a"}, headers=OPS)
    assert (again.status_code, same.status_code) == (201, 200)
    hold_id = orjson.loads(await again.get_data())["id"]
    assert (await client.delete(f"/api/v1/audit/holds/{hold_id}", headers=OPS)).status_code == 204


async def test_probes_and_metrics(client: Client) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    await get_json(client, "/api/v1/audit/verify", OPS)
    metrics = (await (await client.get("/metrics")).get_data()).decode()
    assert "taskflow_audit_entries_written 21.0" in metrics
    assert "taskflow_audit_verify_ok 1.0" in metrics
    assert "taskflow_audit_dlq_messages 0.0" in metrics
    assert (await client.get("/openapi.json")).status_code == 200


async def test_a_body_over_one_mebibyte_is_413(client: Client) -> None:
    big = {"user_id": "a", "reason": "x" * (1024 * 1024 + 10)}
    response = await client.post("/api/v1/audit/holds", json=big, headers=OPS)
    assert response.status_code == 413
    assert response.content_type == "application/problem+json"
