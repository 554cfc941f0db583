"""`Idempotency-Key` replays, and listing with filters and keyset paging."""

from __future__ import annotations

import asyncio
import uuid

from quart.typing import TestClientProtocol as Client

from tests.integration.task_api.conftest import SECRET, create
from tests.kafka_helpers import TopicReader
from webapi.auth import issue_token


async def test_same_key_replays_first_response_and_emits_once(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader
) -> None:
    headers = {**auth, "Idempotency-Key": "create-42"}
    first = await client.post("/api/v1/tasks", json={"title": "once"}, headers=headers)
    second = await client.post("/api/v1/tasks", json={"title": "once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert await first.get_data() == await second.get_data()
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["Idempotent-Replayed"] == "true"
    listed = await (await client.get("/api/v1/tasks", headers=auth)).get_json()
    assert len(listed["items"]) == 1
    await tasks_topic.wait_count(1)
    assert len(await tasks_topic.settle()) == 1


async def test_same_key_with_another_body_is_422(client: Client, auth: dict[str, str]) -> None:
    headers = {**auth, "Idempotency-Key": "k1"}
    assert (
        await client.post("/api/v1/tasks", json={"title": "a"}, headers=headers)
    ).status_code == 201
    other = await client.post("/api/v1/tasks", json={"title": "b"}, headers=headers)
    assert other.status_code == 422 and other.content_type == "application/problem+json"
    assert (await other.get_json())["errors"][0]["field"] == "Idempotency-Key"


async def test_keys_are_per_user(client: Client, auth: dict[str, str]) -> None:
    other = {
        "Authorization": f"Bearer {issue_token(SECRET, 'someone-else')}",
        "Idempotency-Key": "shared",
    }
    mine = {**auth, "Idempotency-Key": "shared"}
    a = await (await client.post("/api/v1/tasks", json={"title": "a"}, headers=mine)).get_json()
    b = await (await client.post("/api/v1/tasks", json={"title": "a"}, headers=other)).get_json()
    assert a["id"] != b["id"]


async def test_idempotent_state_changes(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader
) -> None:
    task = await create(client, auth)
    path = f"/api/v1/tasks/{task['id']}"
    key = {**auth, "Idempotency-Key": "complete-1"}
    first = await client.post(f"{path}/complete", headers=key)
    again = await client.post(f"{path}/complete", headers=key)
    assert first.status_code == again.status_code == 200
    deleted = {**auth, "Idempotency-Key": "delete-1"}
    assert (await client.delete(path, headers=deleted)).status_code == 204
    assert (await client.delete(path, headers=deleted)).status_code == 204
    await tasks_topic.wait_count(3)
    assert len(await tasks_topic.settle()) == 3  # created, completed, deleted


async def test_concurrent_duplicates_write_once(
    client: Client, auth: dict[str, str], tasks_topic: TopicReader
) -> None:
    headers = {**auth, "Idempotency-Key": "race"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/tasks", json={"title": "r"}, headers=headers) for _ in range(5))
    )
    bodies = {await r.get_data() for r in responses if r.status_code == 201}
    assert len(bodies) == 1
    assert all(r.status_code in (201, 409) for r in responses)
    await tasks_topic.wait_count(1)
    assert len(await tasks_topic.settle()) == 1


async def test_filters(client: Client, auth: dict[str, str]) -> None:
    a = await create(
        client,
        auth,
        title="Buy milk",
        tags=["shop"],
        priority="high",
        due_at="2026-12-01T09:00:00Z",
    )
    b = await create(
        client,
        auth,
        title="Call mum",
        description="about the milk run",
        due_at="2026-12-03T09:00:00Z",
    )
    c = await create(client, auth, title="100% done_ish", tags=["shop", "x"])
    await client.post(f"/api/v1/tasks/{c['id']}/complete", headers=auth)

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/api/v1/tasks?{query}", headers=auth)
        assert response.status_code == 200
        return [item["id"] for item in (await response.get_json())["items"]]

    assert await ids("") == [a["id"], b["id"]]
    assert await ids("status=completed") == [c["id"]]
    assert await ids("status=all") == [a["id"], b["id"], c["id"]]
    assert await ids("status=all&tag=shop") == [a["id"], c["id"]]
    assert await ids("q=MILK") == [a["id"], b["id"]]
    assert await ids("status=all&q=100%25") == [c["id"]]
    assert await ids("status=all&q=d_ne") == []  # "_" is not a wildcard
    assert await ids("priority=high") == [a["id"]]
    assert await ids("due_before=2026-12-02T00:00:00%2B00:00") == [a["id"]]
    assert await ids("due_after=2026-12-02T00:00:00Z") == [b["id"]]


async def test_keyset_paging_is_stable_under_inserts(client: Client) -> None:
    user = f"pager-{uuid.uuid4().hex[:6]}"
    auth = {"Authorization": f"Bearer {issue_token(SECRET, user)}"}
    created = [(await create(client, auth, title=f"t{i}"))["id"] for i in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(f"/api/v1/tasks?{query}", headers=auth)).get_json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        if pages == 1:  # an insert while paging lands at the end, nothing shifts
            created.append((await create(client, auth, title="late"))["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created and pages == 3
