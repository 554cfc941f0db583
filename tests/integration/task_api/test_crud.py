"""Every task endpoint against real PostgreSQL, and the one event each change emits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from quart.typing import TestClientProtocol as Client

from events.codec import decode
from tests.integration.task_api.conftest import create
from tests.kafka_helpers import TopicReader, headers_of


async def test_create_returns_task_with_location_and_etag(
    client: Client, auth: dict[str, str]
) -> None:
    body = {
        "title": "Pay rent",
        "description": "before the 5th",
        "due_at": "2026-12-01T09:00:00+01:00",
        "timezone": "Europe/Berlin",
        "priority": "high",
        "tags": ["home", "money"],
        "reminders": [{"before": "PT15M"}, {"at": "2026-11-30T18:00:00Z"}],
        "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1",
    }
    response = await client.post("/api/v1/tasks", json=body, headers=auth)
    assert response.status_code == 201
    task = await response.get_json()
    assert response.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    assert response.headers["ETag"] == '"1"'
    assert uuid.UUID(task["id"]).version == 7
    assert task["due_at"] == "2026-12-01T08:00:00Z"
    assert task["reminders"] == [{"before": "PT15M"}, {"at": "2026-11-30T18:00:00Z"}]
    assert task["status"] == "open" and task["version"] == 1
    assert task["completed_at"] is None
    assert {k: task[k] for k in ("title", "timezone", "priority", "tags", "recurrence")} == {
        "title": "Pay rent",
        "timezone": "Europe/Berlin",
        "priority": "high",
        "tags": ["home", "money"],
        "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1",
    }


async def test_each_change_emits_exactly_one_event(
    client: Client, auth: dict[str, str], user: str, tasks_topic: TopicReader
) -> None:
    task = await create(client, auth, due_at="2026-12-01T09:00:00Z")
    path = f"/api/v1/tasks/{task['id']}"
    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    steps = [
        client.patch(path, json={"title": "renamed", "priority": "low"}, headers=auth),
        client.post(f"{path}/snooze", json={"until": soon}, headers=auth),
        client.post(f"{path}/complete", headers=auth),
        client.post(f"{path}/reopen", headers=auth),
        client.delete(path, headers=auth),
    ]
    for step in steps:
        assert (await step).status_code in (200, 204)

    expected = [
        "task.created",
        "task.updated",
        "task.snoozed",
        "task.completed",
        "task.reopened",
        "task.deleted",
    ]
    messages = await tasks_topic.wait_count(len(expected))
    assert len(await tasks_topic.settle()) == len(expected)
    events = [decode(m.value()) for m in messages]
    assert [e.type for e in events] == expected
    assert [e.data.version for e in events] == [1, 2, 3, 4, 5, 6]  # type: ignore[attr-defined]
    assert len({e.id for e in events}) == len(events)
    for msg, event in zip(messages, events, strict=True):
        assert msg.key() == task["id"].encode()
        assert event.subject == task["id"] and event.user_id == user
        assert event.source == "/taskflow/task-service"
        headers = headers_of(msg)
        assert headers["ce_type"] == event.type
        assert headers["traceparent"].startswith("00-")
    updated = events[1].data
    assert updated.changed == ("title", "priority")  # type: ignore[attr-defined]
    assert updated.title == "renamed"  # type: ignore[attr-defined]


async def test_cloudevent_envelope_is_structured_json(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader
) -> None:
    import orjson

    task = await create(client, auth)
    (msg,) = await tasks_topic.wait_count(1)
    doc = orjson.loads(msg.value())
    assert doc["specversion"] == "1.0"
    assert doc["type"] == "task.created"
    assert doc["datacontenttype"] == "application/json"
    assert doc["dataversion"] == "1"
    assert doc["subject"] == task["id"]
    assert doc["data"]["id"] == task["id"] and doc["data"]["version"] == 1
    assert datetime.fromisoformat(doc["time"]).tzinfo is not None
    uuid.UUID(doc["id"])
    # The extension names the request's trace; the header carries the publish span's child.
    assert doc["traceparent"].split("-")[1] == headers_of(msg)["traceparent"].split("-")[1]


async def test_get_patch_with_if_match(client: Client, auth: dict[str, str]) -> None:
    task = await create(client, auth)
    path = f"/api/v1/tasks/{task['id']}"
    got = await client.get(path, headers=auth)
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'

    ok = await client.patch(path, json={"title": "v2"}, headers={**auth, "If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["ETag"] == '"2"'
    stale = await client.patch(path, json={"title": "v3"}, headers={**auth, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.content_type == "application/problem+json"
    assert (await client.get(path, headers=auth)).headers["ETag"] == '"2"'


async def test_patch_without_change_emits_nothing(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader
) -> None:
    task = await create(client, auth, title="same")
    response = await client.patch(
        f"/api/v1/tasks/{task['id']}", json={"title": "same"}, headers=auth
    )
    assert response.status_code == 200 and (await response.get_json())["version"] == 1
    await tasks_topic.wait_count(1)
    assert len(await tasks_topic.settle()) == 1


async def test_patch_clears_nullable_fields(client: Client, auth: dict[str, str]) -> None:
    task = await create(client, auth, description="d", due_at="2026-12-01T09:00:00Z")
    response = await client.patch(
        f"/api/v1/tasks/{task['id']}", json={"description": None, "due_at": None}, headers=auth
    )
    body = await response.get_json()
    assert response.status_code == 200
    assert body["description"] is None and body["due_at"] is None


async def test_recurring_completion_advances_in_task_time_zone(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader
) -> None:
    # 09:00 in Berlin on the Saturday before the spring DST change (08:00 UTC).
    task = await create(
        client,
        auth,
        due_at="2026-03-28T09:00:00+01:00",
        timezone="Europe/Berlin",
        recurrence="FREQ=DAILY",
    )
    response = await client.post(f"/api/v1/tasks/{task['id']}/complete", headers=auth)
    body = await response.get_json()
    assert body["status"] == "open" and body["completed_at"] is None
    # Still 09:00 local the next day, now CEST: 07:00 UTC.
    assert body["due_at"] == "2026-03-29T07:00:00Z"
    messages = await tasks_topic.wait_count(2)
    completed = decode(messages[1].value())
    assert completed.type == "task.completed"
    assert completed.data.completed_occurrence_due_at == datetime(  # type: ignore[attr-defined]
        2026, 3, 28, 8, tzinfo=UTC
    )


async def test_exhausted_recurrence_completes(client: Client, auth: dict[str, str]) -> None:
    task = await create(
        client, auth, due_at="2026-03-28T08:00:00Z", recurrence="FREQ=DAILY;COUNT=1"
    )
    body = await (
        await client.post(f"/api/v1/tasks/{task['id']}/complete", headers=auth)
    ).get_json()
    assert body["status"] == "completed" and body["completed_at"] is not None


async def test_complete_twice_and_reopen_open_conflict(
    client: Client, auth: dict[str, str]
) -> None:
    task = await create(client, auth)
    path = f"/api/v1/tasks/{task['id']}"
    assert (await client.post(f"{path}/reopen", headers=auth)).status_code == 409
    assert (await client.post(f"{path}/complete", headers=auth)).status_code == 200
    again = await client.post(f"{path}/complete", headers=auth)
    assert again.status_code == 409 and again.content_type == "application/problem+json"


async def test_snooze_for_duration(client: Client, auth: dict[str, str]) -> None:
    task = await create(client, auth)
    before = datetime.now(UTC)
    response = await client.post(
        f"/api/v1/tasks/{task['id']}/snooze", json={"for": "PT1H"}, headers=auth
    )
    until = datetime.fromisoformat((await response.get_json())["snoozed_until"])
    assert before + timedelta(hours=1) <= until <= datetime.now(UTC) + timedelta(hours=1)


async def test_snooze_into_the_past_is_rejected(client: Client, auth: dict[str, str]) -> None:
    task = await create(client, auth)
    response = await client.post(
        f"/api/v1/tasks/{task['id']}/snooze", json={"until": "2020-01-01T00:00:00Z"}, headers=auth
    )
    assert response.status_code == 422
    assert (await response.get_json())["errors"][0]["field"] == "until"


async def test_delete_then_gone(client: Client, auth: dict[str, str]) -> None:
    task = await create(client, auth)
    path = f"/api/v1/tasks/{task['id']}"
    deleted = await client.delete(path, headers=auth)
    assert deleted.status_code == 204 and await deleted.get_data() == b""
    assert (await client.get(path, headers=auth)).status_code == 404
    assert (await client.delete(path, headers=auth)).status_code == 404
