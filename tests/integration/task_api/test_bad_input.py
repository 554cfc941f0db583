"""Every bad input gets a clear problem+json 4xx, never a 500."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from quart.typing import TestClientProtocol as Client

from tests.integration.task_api.conftest import SECRET, create
from webapi.auth import issue_token


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, await response.get_data()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.get_json()
    assert body["status"] == status and body["type"].startswith("https://")
    assert body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer " + issue_token(SECRET, "u", ttl=timedelta(seconds=-10)),
        "Bearer " + issue_token("another-secret-" + "x" * 40, "u"),
        "Bearer " + jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"),  # no exp
        "Bearer " + jwt.encode({"exp": 4102444800}, SECRET, algorithm="HS256"),  # no sub
        "Bearer " + jwt.encode({"sub": "u", "exp": 4102444800}, SECRET, algorithm="HS384"),
    ],
    ids=[
        "missing",
        "empty",
        "basic",
        "malformed",
        "expired",
        "wrong-key",
        "no-exp",
        "no-sub",
        "wrong-alg",
    ],
)
async def test_bad_tokens_are_401(client: Client, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    await problem(await client.get("/api/v1/tasks", headers=headers), 401)
    await problem(await client.post("/api/v1/tasks", json={"title": "x"}, headers=headers), 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "due_at": "2026-12-01T09:00:00"}, "due_at"),
        ({"title": "x", "colour": "red"}, "colour"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 501}, "title"),
        ({}, "title"),
        ({"title": "x", "priority": "urgent"}, "priority"),
        ({"title": "x", "recurrence": "FREQ=SOMETIMES"}, "recurrence"),
        ({"title": "x", "recurrence": "DTSTART:20260101T000000Z"}, "recurrence"),
        ({"title": "x", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        (
            {"title": "x", "due_at": "2026-12-01T09:00:00Z", "reminders": [{"before": "15 min"}]},
            "reminders.0.before",
        ),
        ({"title": "x", "reminders": [{"before": 900}]}, "reminders.0.before"),
        ({"title": "x", "reminders": [{}]}, "reminders.0"),
        ({"title": "x", "reminders": [{"at": "2026-12-01T09:00:00"}]}, "reminders.0.at"),
        ({"title": "x", "reminders": [{"at": "2026-12-01T09:00:00Z"}] * 11}, "reminders"),
        ({"title": "x", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"title": "x", "tags": ["x" * 51]}, "tags.0"),
        ({"title": "x", "description": "d" * 10_001}, "description"),
        ({"title": "x", "reminders": [{"before": "PT5M"}]}, "reminders.0.before"),
        ({"title": "x", "recurrence": "FREQ=DAILY"}, "recurrence"),
        ({"title": 5}, "title"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, str) else None,
)
async def test_invalid_create_is_422_naming_the_field(
    client: Client, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/v1/tasks", json=body, headers=auth)
    errors = (await problem(response, 422))["errors"]
    assert field in [error["field"] for error in errors], errors
    assert all(error["message"] for error in errors)


async def test_every_bad_field_is_named(client: Client, auth: dict[str, str]) -> None:
    body = {"title": "", "priority": "urgent", "timezone": "Nowhere", "extra": 1}
    errors = (await problem(await client.post("/api/v1/tasks", json=body, headers=auth), 422))[
        "errors"
    ]
    assert {e["field"] for e in errors} >= {"title", "priority", "timezone", "extra"}


async def test_broken_json_and_wrong_shapes(client: Client, auth: dict[str, str]) -> None:
    broken = await client.post(
        "/api/v1/tasks", data=b'{"title": ', headers={**auth, "Content-Type": "application/json"}
    )
    await problem(broken, 400)
    await problem(await client.post("/api/v1/tasks", json=["title"], headers=auth), 422)
    await problem(await client.post("/api/v1/tasks", json="title", headers=auth), 422)
    not_json = await client.post(
        "/api/v1/tasks", data=b"title=x", headers={**auth, "Content-Type": "text/plain"}
    )
    assert not_json.status_code in (400, 415, 422)
    assert not_json.content_type == "application/problem+json"


async def test_body_over_one_mebibyte_is_413(client: Client, auth: dict[str, str]) -> None:
    big = b'{"title": "' + b"x" * (1024 * 1024) + b'"}'
    response = await client.post(
        "/api/v1/tasks", data=big, headers={**auth, "Content-Type": "application/json"}
    )
    await problem(response, 413)


async def test_non_uuid_and_unknown_ids_are_404(client: Client, auth: dict[str, str]) -> None:
    await problem(await client.get("/api/v1/tasks/not-a-uuid", headers=auth), 404)
    await problem(await client.patch("/api/v1/tasks/123", json={}, headers=auth), 404)
    unknown = "01939a4e-0000-7000-8000-000000000000"
    await problem(await client.get(f"/api/v1/tasks/{unknown}", headers=auth), 404)
    await problem(await client.post(f"/api/v1/tasks/{unknown}/complete", headers=auth), 404)


async def test_other_users_task_is_404_not_403(client: Client, auth: dict[str, str]) -> None:
    task = await create(client, auth)
    mallory = {"Authorization": f"Bearer {issue_token(SECRET, 'mallory')}"}
    path = f"/api/v1/tasks/{task['id']}"
    for response in (
        await client.get(path, headers=mallory),
        await client.patch(path, json={"title": "mine"}, headers=mallory),
        await client.post(f"{path}/complete", headers=mallory),
        await client.post(f"{path}/snooze", json={"for": "PT1H"}, headers=mallory),
        await client.delete(path, headers=mallory),
    ):
        await problem(response, 404)
    listed = await (await client.get("/api/v1/tasks?status=all", headers=mallory)).get_json()
    assert task["id"] not in [item["id"] for item in listed["items"]]
    assert (await (await client.get(path, headers=auth)).get_json())["version"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None}, "title"),
        ({"priority": None}, "priority"),
        ({"due_at": "2026-12-01 09:00"}, "due_at"),
        ({"status": "completed"}, "status"),
        ({"version": 7}, "version"),
    ],
)
async def test_invalid_patch_is_422(
    client: Client, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    task = await create(client, auth)
    response = await client.patch(f"/api/v1/tasks/{task['id']}", json=body, headers=auth)
    errors = (await problem(response, 422))["errors"]
    assert field in {e["field"] for e in errors} or any(field in e["message"] for e in errors)


async def test_patch_dropping_due_at_under_before_reminder_is_422(
    client: Client, auth: dict[str, str]
) -> None:
    task = await create(
        client, auth, due_at="2026-12-01T09:00:00Z", reminders=[{"before": "PT10M"}]
    )
    response = await client.patch(
        f"/api/v1/tasks/{task['id']}", json={"due_at": None}, headers=auth
    )
    assert (await problem(response, 422))["errors"][0]["field"] == "reminders.0.before"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"until": "2026-12-01T09:00:00Z", "for": "PT1H"},
        {"for": "1 hour"},
        {"for": "PT0S"},
        {"until": "2026-12-01T09:00:00"},
        {"later": True},
    ],
)
async def test_bad_snooze_is_422(
    client: Client, auth: dict[str, str], body: dict[str, Any]
) -> None:
    task = await create(client, auth)
    response = await client.post(f"/api/v1/tasks/{task['id']}/snooze", json=body, headers=auth)
    await problem(response, 422)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=abc",
        "status=done",
        "priority=urgent",
        "due_before=2026-12-01T09:00:00",
        "cursor=!!!",
        "cursor=WzEsMl0",
    ],
)
async def test_bad_list_queries_are_422(client: Client, auth: dict[str, str], query: str) -> None:
    await problem(await client.get(f"/api/v1/tasks?{query}", headers=auth), 422)


async def test_wrong_method_is_problem_json(client: Client, auth: dict[str, str]) -> None:
    response = await client.put("/api/v1/tasks", json={"title": "x"}, headers=auth)
    await problem(response, 405)


async def test_nul_characters_are_refused_not_stored(client: Client, auth: dict[str, str]) -> None:
    # PostgreSQL text cannot hold U+0000: the API must say so, not fail in the database.
    body = {"title": "water\u0000plants", "tags": ["a\u0000"]}
    response = await client.post("/api/v1/tasks", json=body, headers=auth)
    data = await problem(response, 422)
    assert data["errors"] == [
        {"field": "title", "message": "must not contain the NUL character (U+0000)"}
    ]
    listing = await client.get("/api/v1/tasks?q=%00", headers=auth)
    await problem(listing, 400)
