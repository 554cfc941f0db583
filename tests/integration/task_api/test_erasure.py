"""Erasure and export in the task service (issue 16) against real PostgreSQL and the broker:
what is deleted, the one `user.erased` event keyed by the user, idempotency, who may erase
whom, and that nothing new is written for an erased user."""

from __future__ import annotations

import uuid
from typing import Any

from quart.typing import TestClientProtocol as Client
from tortoise import connections

from events.codec import decode
from events.payloads import UserErased
from tests.integration.task_api.conftest import SECRET, create
from tests.kafka_helpers import TopicReader, headers_of
from webapi.auth import issue_token


def bearer(user: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, user, roles=roles)}"}


async def count(sql: str, *args: Any) -> int:
    _, rows = await connections.get("default").execute_query(sql, list(args))
    return int(rows[0]["n"])


async def tasks_of(user: str) -> int:
    return await count("SELECT count(*) AS n FROM tasks WHERE user_id = $1", user)


async def keys_of(user: str) -> int:
    return await count("SELECT count(*) AS n FROM idempotency_keys WHERE user_id = $1", user)


def erased_events(reader: TopicReader) -> list[Any]:
    return [m for m in reader.messages if headers_of(m).get("ce_type") == "user.erased"]


async def test_erasing_deletes_the_users_rows_and_publishes_one_event_keyed_by_the_user(
    client: Client, auth: dict[str, str], user: str, tasks_topic: TopicReader
) -> None:
    await create(client, auth, title="Call the doctor")
    keyed = await client.post(
        "/api/v1/tasks", json={"title": "k"}, headers={**auth, "Idempotency-Key": "k1"}
    )
    assert keyed.status_code == 201
    other = bearer(f"other-{uuid.uuid4().hex[:6]}")
    kept = await create(client, other, title="not mine")
    assert await tasks_of(user) == 2 and await keys_of(user) == 1

    first = await client.delete("/api/v1/me", headers=auth)
    assert first.status_code == 202, await first.get_data()
    body = await first.get_json()
    assert body["user_id"] == user and body["status"] == "/api/v1/me/erasure"
    assert body["status_service"] == "audit"
    uuid.UUID(body["erasure_id"])
    assert await tasks_of(user) == 0 and await keys_of(user) == 0
    assert (await client.get("/api/v1/tasks", headers=auth)).status_code == 200
    assert (await (await client.get("/api/v1/tasks", headers=auth)).get_json())["items"] == []

    again = await client.delete("/api/v1/me", headers=auth)
    assert again.status_code == 202 and await again.get_json() == body

    # Two task.created (keyed by task) and one user.erased (keyed by the user), no more.
    await tasks_topic.wait_for(lambda msgs: len(erased_events(tasks_topic)) >= 1)
    await tasks_topic.settle()
    (msg,) = erased_events(tasks_topic)
    assert msg.key() == user.encode()
    event = decode(msg.value())
    assert isinstance(event.data, UserErased)
    assert event.subject == user and event.user_id == user
    assert str(event.data.erasure_id) == body["erasure_id"]
    assert event.data.requested_by == "self"
    # Another user is untouched.
    got = await client.get(f"/api/v1/tasks/{kept['id']}", headers=other)
    assert got.status_code == 200 and (await got.get_json())["title"] == "not mine"


async def test_nothing_is_written_for_an_erased_user(
    client: Client, auth: dict[str, str], user: str
) -> None:
    task = await create(client, auth)
    assert (await client.delete(f"/api/v1/users/{user}", headers=auth)).status_code == 202
    refused = [
        await client.post("/api/v1/tasks", json={"title": "again"}, headers=auth),
        await client.post(
            "/api/v1/tasks", json={"title": "again"}, headers={**auth, "Idempotency-Key": "k"}
        ),
        await client.patch(f"/api/v1/tasks/{task['id']}", json={"title": "x"}, headers=auth),
        await client.post(f"/api/v1/tasks/{task['id']}/complete", headers=auth),
        await client.delete(f"/api/v1/tasks/{task['id']}", headers=auth),
    ]
    for response in refused:
        assert response.status_code == 410, await response.get_data()
        assert response.content_type == "application/problem+json"
        problem = await response.get_json()
        assert problem["type"].endswith("/user-erased")
    assert await tasks_of(user) == 0 and await keys_of(user) == 0


async def test_operator_erases_a_user_and_gets_404_for_an_unknown_one(
    client: Client, auth: dict[str, str], user: str, tasks_topic: TopicReader
) -> None:
    await create(client, auth)
    operator = bearer("ops-1", "operator")
    erased = await client.delete(f"/api/v1/users/{user}", headers=operator)
    assert erased.status_code == 202
    body = await erased.get_json()
    assert body["status"] == f"/api/v1/users/{user}/erasure"
    again = await client.delete(f"/api/v1/users/{user}", headers=operator)
    assert again.status_code == 202 and await again.get_json() == body

    unknown = await client.delete("/api/v1/users/nobody-at-all", headers=operator)
    assert unknown.status_code == 404
    assert (await unknown.get_json())["type"].endswith("/user-not-found")
    too_long = await client.delete("/api/v1/users/" + "x" * 300, headers=operator)
    assert too_long.status_code == 404

    await tasks_topic.wait_for(lambda msgs: len(erased_events(tasks_topic)) >= 1)
    await tasks_topic.settle()
    (msg,) = erased_events(tasks_topic)
    event = decode(msg.value())
    assert isinstance(event.data, UserErased) and event.data.requested_by == "ops-1"


async def test_a_non_operator_cannot_erase_another_user(
    client: Client, auth: dict[str, str], user: str
) -> None:
    await create(client, auth)
    stranger = bearer(f"stranger-{uuid.uuid4().hex[:6]}")
    for target in (user, "nobody-at-all"):
        response = await client.delete(f"/api/v1/users/{target}", headers=stranger)
        assert response.status_code == 404
        assert (await response.get_json())["type"].endswith("/user-not-found")
    assert await tasks_of(user) == 1
    assert (await client.delete("/api/v1/me")).status_code == 401


async def test_export_holds_every_task_of_the_caller(
    client: Client, auth: dict[str, str], user: str
) -> None:
    made = [await create(client, auth, title=f"t{i}", tags=["home"]) for i in range(3)]
    await create(client, bearer("someone-else"), title="not mine")
    response = await client.get("/api/v1/me/export", headers=auth)
    assert response.status_code == 200
    export = await response.get_json()
    assert export["format"] == "taskflow.tasks.export/v1"
    assert export["service"] == "tasks" and export["user_id"] == user
    assert export["erasure"] is None
    assert export["tasks"] == made  # the same shape as the REST task, oldest first

    await client.delete("/api/v1/me", headers=auth)
    after = await (await client.get("/api/v1/me/export", headers=auth)).get_json()
    assert after["tasks"] == [] and after["erasure"]["erasure_id"]
