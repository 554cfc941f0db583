"""Every tool through the SDK's Streamable HTTP client on the real service: happy paths with
the one event each change emits, bad inputs as tool errors naming the field, isolation,
stale versions and idempotent retries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp import Client

from events.codec import decode
from tests.integration.mcp.conftest import Connect, structured, tool_error
from tests.kafka_helpers import TopicReader, headers_of

pytestmark = pytest.mark.integration

SOON = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)


async def create(client: Client, **args: Any) -> dict[str, Any]:
    result: dict[str, Any] = structured(
        await client.call_tool("create_task", {"title": "t", **args})
    )
    return result


async def event_types(topic: TopicReader, count: int) -> list[str]:
    await topic.wait_count(count)
    messages = await topic.settle(0.5)
    assert all(headers_of(m)["ce_type"] == decode(m.value()).type for m in messages)
    return [decode(m.value()).type for m in messages]


async def test_every_tool_runs_its_use_case_and_emits_one_event(
    connect: Connect, tasks_topic: TopicReader, user: str
) -> None:
    async with connect() as client:
        task = await create(
            client,
            title="Pay rent",
            due_at=SOON.isoformat(),
            reminders=[{"before": "PT1H"}],
            tags=["home"],
        )
        assert task["version"] == 1 and task["reminders"] == [{"before": "PT1H"}]
        task_id = task["id"]
        got = structured(await client.call_tool("get_task", {"task_id": task_id}))
        assert got == task
        page = structured(await client.call_tool("list_tasks", {"tag": "home", "q": "rent"}))
        assert [t["id"] for t in page["items"]] == [task_id] and page["next_cursor"] is None
        upcoming = structured(await client.call_tool("upcoming_reminders", {}))
        kinds = {(r["task_id"], r["kind"]) for r in upcoming["items"]}
        assert {(task_id, "before"), (task_id, "due")} <= kinds
        updated = structured(
            await client.call_tool(
                "update_task", {"task_id": task_id, "priority": "high", "version": 1}
            )
        )
        assert updated["priority"] == "high" and updated["version"] == 2
        snoozed = structured(
            await client.call_tool("snooze_task", {"task_id": task_id, "for": "PT2H"})
        )
        assert snoozed["snoozed_until"] is not None
        done = structured(await client.call_tool("complete_task", {"task_id": task_id}))
        assert done["status"] == "completed"
        reopened = structured(await client.call_tool("reopen_task", {"task_id": task_id}))
        assert reopened["status"] == "open" and reopened["version"] == 5
        deleted = structured(await client.call_tool("delete_task", {"task_id": task_id}))
        assert deleted == {"deleted": True, "task_id": task_id}
    types = await event_types(tasks_topic, 6)
    assert types == [
        "task.created",
        "task.updated",
        "task.snoozed",
        "task.completed",
        "task.reopened",
        "task.deleted",
    ]
    envelopes = [decode(m.value()) for m in tasks_topic.messages]
    assert {e.user_id for e in envelopes} == {user}
    assert all(e.traceparent for e in envelopes)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        (
            {"title": "x", "due_at": "2030-01-01T09:00:00+00:00", "recurrence": "FREQ=SOMETIMES"},
            "recurrence",
        ),
        ({"title": "x", "recurrence": "FREQ=DAILY"}, "recurrence"),
        ({"title": "x", "due_at": "2030-01-01T09:00:00"}, "due_at"),
        ({"title": "x", "timezone": "Mars/Olympus"}, "timezone"),
        ({"title": "x", "colour": "red"}, "colour"),
        ({"title": "x", "reminders": [{"before": "soon"}]}, "reminders.0.before"),
        ({"title": "a\u0000b"}, "title"),
    ],
)
async def test_bad_create_arguments_are_tool_errors_naming_the_field(
    connect: Connect, arguments: dict[str, Any], field: str
) -> None:
    async with connect() as client:
        text = tool_error(await client.call_tool("create_task", arguments))
    assert f"- {field}:" in text


async def test_unknown_missing_and_foreign_tasks_are_not_found(connect: Connect) -> None:
    async with connect(as_user="someone-else") as other:
        foreign = (await create(other))["id"]
    async with connect() as client:
        for task_id in (str(uuid.uuid4()), foreign):
            for name in ("get_task", "complete_task", "reopen_task", "delete_task"):
                text = tool_error(await client.call_tool(name, {"task_id": task_id}))
                assert "task_not_found" in text
            text = tool_error(
                await client.call_tool("update_task", {"task_id": task_id, "title": "mine"})
            )
            assert "task_not_found" in text
        text = tool_error(await client.call_tool("get_task", {"task_id": "not-a-uuid"}))
        assert "- task_id:" in text
        assert "task_not_found" in tool_error(
            await client.call_tool("get_task", {"task_id": foreign})
        )


async def test_stale_version_and_bad_states_are_refused(connect: Connect) -> None:
    async with connect() as client:
        task = await create(client)
        args = {"task_id": task["id"], "title": "new", "version": 7}
        assert "version_mismatch" in tool_error(await client.call_tool("update_task", args))
        assert "state_conflict" in tool_error(
            await client.call_tool("reopen_task", {"task_id": task["id"]})
        )
        text = tool_error(
            await client.call_tool(
                "snooze_task", {"task_id": task["id"], "for": "PT1H", "until": SOON.isoformat()}
            )
        )
        assert "- arguments:" in text
        assert "unknown_tool" in tool_error(await client.call_tool("drop_tables", {}))


async def test_an_idempotent_retry_returns_the_first_result_and_emits_nothing(
    connect: Connect, tasks_topic: TopicReader
) -> None:
    async with connect() as client:
        args = {"title": "once", "idempotency_key": "create-1"}
        first = structured(await client.call_tool("create_task", args))
        again = structured(await client.call_tool("create_task", args))
        assert first == again
        other = await client.call_tool("create_task", {**args, "title": "other"})
        assert "- Idempotency-Key:" in tool_error(other)
        key = {"task_id": first["id"], "idempotency_key": "done-1"}
        assert structured(await client.call_tool("complete_task", key)) == structured(
            await client.call_tool("complete_task", key)
        )
        listed = structured(await client.call_tool("list_tasks", {"status": "all"}))
        assert len(listed["items"]) == 1
    assert await event_types(tasks_topic, 2) == ["task.created", "task.completed"]


async def test_listing_pages_with_the_rest_filters(connect: Connect) -> None:
    async with connect() as client:
        for n in range(3):
            await create(client, title=f"n{n}", priority="high" if n else "low")
        first = structured(await client.call_tool("list_tasks", {"limit": 2, "priority": "high"}))
        assert len(first["items"]) == 2 and first["next_cursor"] is None
        page = structured(await client.call_tool("list_tasks", {"limit": 2}))
        rest = structured(
            await client.call_tool("list_tasks", {"limit": 2, "cursor": page["next_cursor"]})
        )
        assert len(page["items"]) + len(rest["items"]) == 3
        assert "- cursor:" in tool_error(await client.call_tool("list_tasks", {"cursor": "bogus"}))
        assert "- limit:" in tool_error(await client.call_tool("list_tasks", {"limit": 0}))
