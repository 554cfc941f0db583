"""The whole system, started as the README says (`taskflow up` in an empty folder), used as
the chatbot frontend uses it, restarted with a reminder pending, and stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.system import Client, System, eventually, until

pytestmark = pytest.mark.e2e

# Logs of the last run, for CI to upload (git-ignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
# Reminder timing is judged against the wall clock of a busy 2-core machine.
ON_TIME = timedelta(seconds=3)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(tmp_path_factory.mktemp("e2e") / "data")
    try:
        running.start()
        yield running
    finally:
        running.kill_everything()
        running.keep_logs(ARTIFACTS)


@pytest.fixture
async def alice(system: System) -> AsyncIterator[Client]:
    client = Client(system, "alice")
    yield client
    await client.aclose()


@pytest.fixture
async def bob(system: System) -> AsyncIterator[Client]:
    client = Client(system, "bob")
    yield client
    await client.aclose()


@pytest.fixture
async def operator(system: System) -> AsyncIterator[Client]:
    client = Client(system, "olga", "operator")
    yield client
    await client.aclose()


def at(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_on_time(fired: datetime, due: datetime) -> None:
    assert due - timedelta(milliseconds=100) <= fired <= due + ON_TIME, (fired, due)


async def test_two_users_create_update_complete_and_get_reminders_on_time(
    system: System, alice: Client, bob: Client, operator: Client
) -> None:
    await alice.open_ws()
    await bob.open_ws()
    await until(lambda: bool(alice.frames) and bool(bob.frames), 10, "the first frames")
    assert alice.frames[0].data == {"type": "unread_count", "count": 0}

    # Alice: a task due in 10 s, reminded 6 s before (so at +4 s); Bob: due in 6 s.
    task = await alice.call(
        "POST",
        "task-api",
        "/api/v1/tasks",
        json={
            "title": "call the plumber",
            "due_at": at(10).isoformat(),
            "reminders": [{"before": "PT6S"}],
        },
    )
    assert task.status_code == 201, task.text
    task_a = task.json()
    created = await bob.call(
        "POST",
        "task-api",
        "/api/v1/tasks",
        json={"title": "water the plants", "due_at": at(6).isoformat()},
    )
    assert created.status_code == 201, created.text
    task_b = created.json()

    # The reminder service lists each user's own upcoming reminders only (its read model
    # is fed by the reminder flow, so it catches up shortly after the write).
    async def upcoming(client: Client) -> list[dict[str, str]]:
        response = await client.call("GET", "reminders", "/api/v1/reminders")
        assert response.status_code == 200, response.text
        items: list[dict[str, str]] = response.json()["items"]
        return items

    mine = await eventually(lambda: upcoming(alice), bool, 15, "alice's reminders")
    assert {r["task_id"] for r in mine} == {task_a["id"]}
    before = next(r for r in mine if r["kind"] == "before")
    remind_a = parse(before["remind_at"])
    assert remind_a == parse(task_a["due_at"]) - timedelta(seconds=6)
    theirs = await eventually(lambda: upcoming(bob), bool, 15, "bob's reminders")
    assert {r["task_id"] for r in theirs} == {task_b["id"]}

    # Isolation: another user's task is a 404, never a 403.
    peek = await alice.call("GET", "task-api", f"/api/v1/tasks/{task_b['id']}")
    assert peek.status_code == 404

    updated = await alice.call(
        "PATCH", "task-api", f"/api/v1/tasks/{task_a['id']}", json={"priority": "high"}
    )
    assert updated.status_code == 200 and updated.json()["version"] == 2

    # Alice's reminder fires on time; she completes the task before its due-time reminder.
    notes = await alice.wait_for(3, timeout=20)
    reminder = notes[2]
    assert reminder["kind"] == "task.reminder" and reminder["task_id"] == task_a["id"]
    assert_on_time(alice.received_at(reminder["id"]), remind_a)
    done = await alice.call("POST", "task-api", f"/api/v1/tasks/{task_a['id']}/complete")
    assert done.status_code == 200 and done.json()["status"] == "completed"
    notes = await alice.wait_for(4)
    assert [n["kind"] for n in notes] == [
        "task.created",
        "task.updated",
        "task.reminder",
        "task.completed",
    ]
    assert [n["seq"] for n in notes] == [1, 2, 3, 4]
    assert {n["task_id"] for n in notes} == {task_a["id"]}

    # Bob's due-time reminder fires on time, and he sees nothing of Alice's.
    bob_notes = await bob.wait_for(2, timeout=20)
    assert [n["kind"] for n in bob_notes] == ["task.created", "task.reminder"]
    assert_on_time(bob.received_at(bob_notes[1]["id"]), parse(task_b["due_at"]))
    assert {n["task_id"] for n in bob.notifications()} == {task_b["id"]}

    # The completed task's due-time reminder (at +10 s) never comes.
    await until(lambda: datetime.now(UTC) > parse(task_a["due_at"]) + ON_TIME, 30, "due + slack")
    assert len(alice.notifications()) == 4, alice.notifications()

    # Reconnect with `since`: exactly what came after, in order, no duplicates.
    await alice.close_ws()
    await alice.open_ws(since=1)
    replay = await alice.wait_for(3)
    assert [n["seq"] for n in replay] == [2, 3, 4]
    assert [n["id"] for n in replay] == [n["id"] for n in notes[1:]]
    listed = await alice.call("GET", "notify", "/api/v1/notifications")
    assert listed.status_code == 200
    assert {n["id"] for n in listed.json()["items"]} == {n["id"] for n in notes}
    assert listed.json()["unread_count"] == 4

    # Audit: Alice sees her task's history, Bob does not; the chain verifies.
    async def audit_types(client: Client) -> set[str]:
        response = await client.call(
            "GET", "audit", "/api/v1/audit", params={"task_id": task_a["id"]}
        )
        assert response.status_code == 200, response.text
        return {item["type"] for item in response.json()["items"]}

    wanted = {"task.created", "task.updated", "task.completed"}
    await eventually(lambda: audit_types(alice), wanted.issubset, 20, "alice's audit entries")
    assert await audit_types(bob) == set()
    verify = await operator.call("GET", "audit", "/api/v1/audit/verify")
    assert verify.status_code == 200
    assert verify.json()["ok"] is True and verify.json()["checked"] >= 6


async def test_a_restart_keeps_data_and_fires_a_pending_reminder_once_on_time(
    system: System, alice: Client, operator: Client
) -> None:
    # A reminder far enough away to outlive the restart.
    due = at(30)
    created = await alice.call(
        "POST", "task-api", "/api/v1/tasks", json={"title": "pay rent", "due_at": due.isoformat()}
    )
    assert created.status_code == 201, created.text
    task = created.json()
    # since=0 replays everything, so the notification cannot slip past the connection.
    await alice.open_ws(since=0)

    def created_note() -> list[dict[str, Any]]:
        return [n for n in alice.notifications() if n["task_id"] == task["id"]]

    await until(lambda: bool(created_note()), 20, "the task.created notification")
    assert [n["kind"] for n in created_note()] == ["task.created"]
    last_seq = created_note()[0]["seq"]
    assert [n["seq"] for n in alice.notifications()] == list(range(1, last_seq + 1))
    await alice.close_ws()

    before = system.pids()
    assert system.stop() == 0
    assert system.leftovers() == [], "processes left running after SIGTERM"
    system.start()
    after = system.pids()
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    assert "republishing open tasks" in system.output.read_text()

    # PostgreSQL kept everything; the fresh broker got the open task back as a snapshot.
    kept = await alice.call("GET", "task-api", f"/api/v1/tasks/{task['id']}")
    assert kept.status_code == 200 and kept.json()["version"] == task["version"]

    async def pending() -> set[str]:
        response = await alice.call("GET", "reminders", "/api/v1/reminders")
        return {r["task_id"] for r in response.json()["items"]}

    try:
        await eventually(pending, lambda ids: task["id"] in ids, 30, "the rebuilt reminder")
    except AssertionError as exc:
        # Where did the rebuild stop? The audit flow records every event on the topic.
        audit = await operator.call(
            "GET", "audit", "/api/v1/audit", params={"task_id": task["id"], "limit": 200}
        )
        seen = [(e["type"], e["recorded_at"]) for e in audit.json().get("items", [])]
        raise AssertionError(f"{exc}; audit entries for the task: {seen}") from None

    await alice.open_ws(since=last_seq)
    fired = await alice.wait_for(1, timeout=60)
    assert fired[0]["kind"] == "task.reminder" and fired[0]["task_id"] == task["id"]
    assert fired[0]["seq"] == last_seq + 1, "a snapshot must not notify"
    assert_on_time(alice.received_at(fired[0]["id"]), due)
    # Once: nothing more for this task within the slack after it fired.
    await until(lambda: datetime.now(UTC) > due + ON_TIME, 30, "due + slack")
    assert [n["task_id"] for n in alice.notifications()] == [task["id"]]


def test_stopping_leaves_nothing_running(system: System) -> None:
    assert system.stop() == 0
    output = system.output.read_text()
    assert "stopped; nothing left running" in output
    assert system.leftovers() == []
    assert not (system.data_dir / "pids.json").exists()
