"""Right to erasure across the whole system (issue 16), started as a user starts it
(`taskflow up` in an empty folder: real PostgreSQL, Tansu, every service and both flows)
and driven over REST and WebSocket as the chatbot frontend does.

Alice and Bob each have tasks, reminders (one of Alice's fires before the erasure, one
would fire after it), notification preferences with a webhook to a real HTTP receiver and a
push subscription, an open WebSocket and the audit entries that come from their events.
Alice's data is exported, then she is erased: nothing of hers is readable anywhere
afterwards, her reminder never fires, the audit trail keeps her entries (shredded) and still
verifies, and Bob is untouched. Then the bad inputs, and an erasure under a legal hold."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.system import Client, System, eventually, until
from tests.integration.notify.receivers import Receiver, receiver

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e-erasure"
# Slack for a reminder's fire time on a busy 2-core machine.
ON_TIME = timedelta(seconds=3)
# A valid P-256 point, as a browser's PushSubscription carries.
P256 = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
PUSH_AUTH = "tBHItJI5svbpez7KI4CCXg"
# Words only Alice's tasks use, to look for in full text and in every export.
ALICE_WORDS = ("zanzibar", "quokka", "marmalade")
SERVICES = {"tasks", "notifications", "reminders", "audit"}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(
        tmp_path_factory.mktemp("e2e-erasure") / "data",
        # Short windows so a reminder goes out on its own, within the test's time.
        extra_env={"TASKFLOW_REMINDERS_DIGEST_WINDOW": "PT2S"},
    )
    try:
        running.start()
        yield running
    finally:
        try:
            if running.process is not None and running.process.poll() is None:
                running.stop()
        finally:
            running.kill_everything()
            running.keep_logs(ARTIFACTS)


@pytest.fixture
async def clients(system: System) -> AsyncIterator[dict[str, Client]]:
    made = {
        "alice": Client(system, "alice"),
        "bob": Client(system, "bob"),
        "carol": Client(system, "carol"),
        "olga": Client(system, "olga", "operator"),
    }
    yield made
    for client in made.values():
        await client.aclose()


def at(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def ok(client: Client, method: str, service: str, path: str, **kwargs: Any) -> Any:
    response = await client.call(method, service, path, **kwargs)
    assert response.is_success, (method, path, response.status_code, response.text)
    return response.json() if response.content else None


async def create_task(client: Client, title: str, **fields: Any) -> dict[str, Any]:
    created = await client.call(
        "POST", "task-api", "/api/v1/tasks", json={"title": title, **fields}
    )
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


async def scheduled(client: Client) -> set[str]:
    """Task ids of the caller's upcoming reminders (the reminder service's read model)."""
    page = await ok(client, "GET", "reminders", "/api/v1/reminders", params={"limit": 200})
    return {item["task_id"] for item in page["items"]}


async def schedule(client: Client) -> list[dict[str, Any]]:
    page = await ok(client, "GET", "reminders", "/api/v1/reminders", params={"limit": 200})
    items: list[dict[str, Any]] = page["items"]
    return items


async def pending_rows(system: System) -> int:
    """Every user's schedule rows (`taskflow_reminders_pending` is their count)."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(system.url("reminders") + "/metrics")).text
    (value,) = re.findall(r"^taskflow_reminders_pending ([0-9.e+]+)$", text, re.MULTILINE)
    return int(float(value))


async def audit_items(client: Client, **params: Any) -> list[dict[str, Any]]:
    page = await ok(client, "GET", "audit", "/api/v1/audit", params={"limit": 200, **params})
    items: list[dict[str, Any]] = page["items"]
    return items


async def audit_export(operator: Client, user: str) -> tuple[str, list[dict[str, Any]]]:
    response = await operator.call(
        "GET", "audit", "/api/v1/audit/export", params={"format": "jsonl", "user_id": user}
    )
    assert response.status_code == 200, response.text
    return response.text, [json.loads(line) for line in response.text.splitlines() if line]


async def erasure_status(client: Client, path: str = "/api/v1/me/erasure") -> dict[str, Any]:
    status: dict[str, Any] = await ok(client, "GET", "audit", path)
    return status


async def verify_ok(operator: Client) -> None:
    report = await ok(operator, "GET", "audit", "/api/v1/audit/verify")
    assert report["ok"] is True, report


def hooks(rec: Receiver, user: str) -> list[dict[str, Any]]:
    """Webhook bodies the receiver got for `user`."""
    return [json.loads(r.body) for r in rec.requests if r.path == f"/hook/{user}"]


def pushes(rec: Receiver, user: str) -> int:
    return sum(1 for r in rec.requests if r.path == f"/push/{user}")


def of_user(rec: Receiver, user: str) -> int:
    """Every request (webhook or push) the receiver got for `user`."""
    return sum(1 for r in rec.requests if r.path.endswith(f"/{user}"))


async def subscribe(client: Client, rec: Receiver) -> str:
    """Webhook and push on (in-app stays on), both to the local receiver."""
    prefs = {
        "channels": {"in_app": True, "email": False, "push": True, "webhook": True},
        "webhook_url": rec.url(f"/hook/{client.user}"),
    }
    await ok(client, "PUT", "notify", "/api/v1/preferences", json=prefs)
    sub = {"endpoint": rec.url(f"/push/{client.user}"), "keys": {"p256dh": P256, "auth": PUSH_AUTH}}
    response = await client.call("POST", "notify", "/api/v1/push-subscriptions", json=sub)
    assert response.status_code == 201, response.text
    sub_id: str = response.json()["id"]
    return sub_id


async def export_user(system: System, user: str, out: Path, code: int = 0) -> dict[str, Any]:
    """`taskflow user export --user U` as an operator runs it (the run's secret)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "deploy.cli", "user", "export", "--user", user, "--out", str(out)),
        env=system.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == code, output.decode()
    assert out.stat().st_mode & 0o077 == 0, "the export holds personal data: owner-only"
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def kinds(client: Client) -> list[str]:
    return [n["kind"] for n in client.notifications()]


async def test_erasure_forgets_alice_everywhere_and_leaves_bob_untouched(
    system: System, clients: dict[str, Client], tmp_path: Path
) -> None:
    alice, bob, olga = clients["alice"], clients["bob"], clients["olga"]
    async with receiver() as rec:
        # --- Set up: preferences (webhook + push), open sockets, tasks and reminders.
        alice_sub = await subscribe(alice, rec)
        await subscribe(bob, rec)
        await alice.open_ws()
        await bob.open_ws()
        await until(lambda: bool(alice.frames) and bool(bob.frames), 10, "the first frames")

        # Fires in a few seconds, before the erasure: a reminder notification of hers.
        fires_now = await create_task(
            alice,
            "call the zanzibar plumber",
            due_at=at(3600).isoformat(),
            reminders=[{"at": at(3).isoformat()}],
            tags=["quokka"],
        )
        # Scheduled (the due-time reminder), never fires during the test.
        later = await create_task(
            alice,
            "marmalade tax return",
            description="zanzibar receipts",
            due_at=at(86400).isoformat(),
        )
        bobs_later = await create_task(bob, "water the plants", due_at=at(86400).isoformat())
        await alice.wait_for(3, timeout=20)  # two created, one reminder
        assert sorted(kinds(alice)) == ["task.created", "task.created", "task.reminder"]
        reminder = next(n for n in alice.notifications() if n["kind"] == "task.reminder")
        assert reminder["task_id"] == fires_now["id"]
        # Her reminder also went out by webhook and push.
        await until(
            lambda: (
                any(h["notification"]["kind"] == "task.reminder" for h in hooks(rec, "alice"))
                and pushes(rec, "alice") >= 1
            ),
            20,
            "alice's webhook and push deliveries",
        )

        # Two reminders due after the erasure: Alice's must never fire, Bob's must.
        remind_at = at(15)
        after = await create_task(
            alice,
            "quokka feeding",
            due_at=at(7200).isoformat(),
            reminders=[{"at": remind_at.isoformat()}],
        )
        bobs_after = await create_task(
            bob,
            "feed the cat",
            due_at=at(7200).isoformat(),
            reminders=[{"at": remind_at.isoformat()}],
        )
        alice_tasks = {fires_now["id"], later["id"], after["id"]}
        await eventually(
            lambda: scheduled(alice), alice_tasks.issubset, 15, "alice's reminder schedule"
        )
        await eventually(
            lambda: scheduled(bob),
            {bobs_later["id"], bobs_after["id"]}.issubset,
            15,
            "bob's reminder schedule",
        )
        # The audit entries came by themselves; her words are searchable while she exists.
        await eventually(
            lambda: audit_items(olga, user_id="alice"),
            lambda items: (
                {"task.created", "task.reminder"} <= {e["type"] for e in items}
                and sum(e["type"] == "task.created" for e in items) == 3
            ),
            20,
            "alice's audit entries",
        )
        found = await audit_items(olga, q="zanzibar")
        assert found and {e["user_id"] for e in found} == {"alice"}
        await eventually(
            lambda: audit_items(olga, user_id="bob", type="task.created"),
            lambda items: len(items) == 2,
            20,
            "bob's audit entries",
        )

        # --- Export (portability): every service's section holds her data.
        document = await export_user(system, "alice", tmp_path / "alice.json")
        assert document["user_id"] == "alice" and document["complete"] is True, document
        sections = document["services"]
        assert set(sections) == SERVICES
        assert {part["status"] for part in sections.values()} == {"ok"}
        tasks_part = sections["tasks"]["data"]
        assert {t["id"] for t in tasks_part["tasks"]} == alice_tasks
        assert tasks_part["erasure"] is None
        notify_part = sections["notifications"]["data"]
        assert {n["kind"] for n in notify_part["notifications"]} >= {
            "task.created",
            "task.reminder",
        }
        assert notify_part["preferences"]["webhook_url"] == rec.url("/hook/alice")
        assert [s["endpoint"] for s in notify_part["push_subscriptions"]] == [
            rec.url("/push/alice")
        ]
        assert {d["channel"] for d in notify_part["deliveries"]} >= {"webhook", "push"}
        reminders_part = sections["reminders"]["data"]
        assert {r["task_id"] for r in reminders_part["scheduled"]} >= alice_tasks
        assert fires_now["id"] in {h["task_id"] for h in reminders_part["history"]}
        audit_part = sections["audit"]["data"]
        assert audit_part["user_id"] == "alice"
        assert {e["user_id"] for e in audit_part["entries"]} == {"alice"}
        titles = {e["data"].get("title") for e in audit_part["entries"]}
        assert "call the zanzibar plumber" in titles
        assert not any(e["erased"] for e in audit_part["entries"])
        # Nothing of Bob's in hers.
        assert "water the plants" not in json.dumps(document)

        # The audit record of her as it stands before the erasure (for count/types/times).
        _, before = await audit_export(olga, "alice")
        assert before and not any(e["erased"] for e in before)

        # Every schedule row there is belongs to Alice or Bob.
        alice_rows, bob_rows = len(await schedule(alice)), len(await schedule(bob))
        assert await pending_rows(system) == alice_rows + bob_rows

        # --- Erase Alice with her own token.
        erase = await alice.call("DELETE", "task-api", "/api/v1/me")
        assert erase.status_code == 202, erase.text
        accepted = erase.json()
        assert accepted["user_id"] == "alice" and accepted["status"] == "/api/v1/me/erasure"
        assert accepted["status_service"] == "audit"

        # Her socket is closed by the server with 4403.
        assert await alice.closed_by_server(timeout=15) == 4403

        status = await eventually(
            lambda: erasure_status(alice), lambda s: s["done"] is True, 30, "alice's erasure"
        )
        assert status["erasure_id"] == accepted["erasure_id"]
        assert status["services"] == dict.fromkeys(SERVICES, "completed")
        assert status["requested_by"] == "self"
        seen_for_alice = of_user(rec, "alice")
        margin = (remind_at - datetime.now(UTC)).total_seconds()
        assert margin > 1, f"erasure done {-margin:.1f}s after her reminder was due: no proof"
        # The operator's view of the same status.
        ops_status = await erasure_status(olga, "/api/v1/users/alice/erasure")
        assert ops_status == status

        # --- Nothing of hers is readable anywhere.
        # Tasks: reads answer as for a user with no data; writes are 410.
        listed = await ok(alice, "GET", "task-api", "/api/v1/tasks")
        assert listed["items"] == []
        for task_id in alice_tasks:
            one = await alice.call("GET", "task-api", f"/api/v1/tasks/{task_id}")
            assert one.status_code in (404, 410), one.text
            peek = await olga.call("GET", "task-api", f"/api/v1/tasks/{task_id}")
            assert peek.status_code in (404, 410), peek.text
        again = await alice.call("POST", "task-api", "/api/v1/tasks", json={"title": "back"})
        assert again.status_code == 410, again.text
        assert again.json()["type"].endswith("/user-erased")
        mine = await ok(alice, "GET", "task-api", "/api/v1/me/export")
        assert mine["tasks"] == [] and mine["erasure"]["erasure_id"] == accepted["erasure_id"]

        # Notifications: inbox, preferences, push subscriptions and her export are gone.
        for method, path in (
            ("GET", "/api/v1/notifications"),
            ("GET", "/api/v1/preferences"),
            ("DELETE", f"/api/v1/push-subscriptions/{alice_sub}"),
            ("GET", "/api/v1/me/export"),
        ):
            gone = await alice.call(method, "notify", path)
            assert gone.status_code == 410, (path, gone.status_code, gone.text)
            assert gone.headers["content-type"] == "application/problem+json"
            assert gone.json()["type"].endswith("/user-erased")
        # A new socket is refused.
        await alice.open_ws(since=0)
        assert await alice.closed_by_server(timeout=10) == 4403
        assert not alice.notifications()

        # Reminders: her schedule and history are gone.
        for path in ("/api/v1/reminders", "/api/v1/me/export"):
            response = await alice.call("GET", "reminders", path)
            assert response.status_code == 410, (path, response.status_code, response.text)
            assert response.json()["type"].endswith("/user-erased")

        # ... and her schedule rows are deleted, not only hidden (Bob's not yet due).
        assert await pending_rows(system) == bob_rows == len(await schedule(bob))

        # Audit: her entries stay, shredded; nothing of hers is found by her words.
        for word in ALICE_WORDS:
            hits = await audit_items(olga, q=word)
            assert [e for e in hits if e["user_id"] == "alice"] == [], (word, hits)
        text, kept = await audit_export(olga, "alice")
        for word in ALICE_WORDS:
            assert word not in text.lower(), word
        by_id = {e["event_id"]: e for e in kept}
        for entry in before:  # count, types and times are the compliance record
            still = by_id.get(entry["event_id"])
            assert still is not None, entry["event_id"]
            assert (still["type"], still["occurred_at"], still["recorded_at"]) == (
                entry["type"],
                entry["occurred_at"],
                entry["recorded_at"],
            )
            assert still["hash"] == entry["hash"] and still["chain_seq"] == entry["chain_seq"]
            assert still["erased"] is True
        created = [e for e in kept if e["type"] == "task.created"]
        assert len(created) == 3
        assert {e["data"]["title"] for e in created} == {"[erased]"}
        assert "user.erased" in {e["type"] for e in kept}
        # The erasure is itself an audit entry, with ids and counts only.
        (done,) = await audit_items(olga, user_id="alice", type="audit.erasure.completed")
        assert done["data"]["erasure_id"] == accepted["erasure_id"]
        assert done["data"]["sealed_entries"] > 0
        own = await audit_items(alice)
        assert own and all(e["erased"] for e in own if e["type"].startswith("task."))
        assert not any(word in json.dumps(own).lower() for word in ALICE_WORDS)
        await verify_ok(olga)
        # Her export now holds nothing of hers: the services that forgot her say so.
        gathered = await export_user(system, "alice", tmp_path / "again.json", code=1)
        assert gathered["complete"] is False
        assert gathered["services"]["notifications"]["http_status"] == 410
        assert gathered["services"]["reminders"]["http_status"] == 410
        assert gathered["services"]["tasks"]["data"]["tasks"] == []
        for word in ALICE_WORDS:
            assert word not in json.dumps(gathered).lower(), word

        # --- Bob is untouched, and his reminder fires after her erasure; hers never does.
        await bob.wait_for(1, timeout=5)
        bob_before = len(bob.notifications())
        await until(
            lambda: any(
                n["kind"] == "task.reminder" and n["task_id"] == bobs_after["id"]
                for n in bob.notifications()
            ),
            (remind_at - datetime.now(UTC)).total_seconds() + 20,
            "bob's reminder",
        )
        assert len(bob.notifications()) > bob_before
        await until(
            lambda: any(
                h["notification"]["kind"] == "task.reminder"
                and h["notification"]["task_id"] == bobs_after["id"]
                for h in hooks(rec, "bob")
            ),
            20,
            "bob's reminder by webhook",
        )
        await until(lambda: datetime.now(UTC) > remind_at + ON_TIME, 30, "her reminder's time")
        # Her reminder produced no event at all (the audit flow records every event).
        fired = await audit_items(olga, task_id=after["id"], type="task.reminder")
        assert fired == [], fired
        # ... where Bob's, due at the same instant, is there.
        assert await audit_items(olga, task_id=bobs_after["id"], type="task.reminder")
        assert of_user(rec, "alice") == seen_for_alice, "the receiver got more for alice"

        bobs = await ok(bob, "GET", "task-api", "/api/v1/tasks")
        assert {t["id"] for t in bobs["items"]} == {bobs_later["id"], bobs_after["id"]}
        inbox = await ok(bob, "GET", "notify", "/api/v1/notifications")
        assert {n["task_id"] for n in inbox["items"]} == {bobs_later["id"], bobs_after["id"]}
        prefs = await ok(bob, "GET", "notify", "/api/v1/preferences")
        assert prefs["webhook_url"] == rec.url("/hook/bob")
        assert bobs_later["id"] in await scheduled(bob)
        bob_audit = await audit_items(olga, user_id="bob")
        assert bob_audit and not any(e["erased"] for e in bob_audit)
        assert "water the plants" in {e["data"].get("title") for e in bob_audit}
        assert {e["user_id"] for e in await audit_items(olga, q="plants")} == {"bob"}
        bob_status = await erasure_status(bob)
        assert bob_status["erasure_id"] is None
        assert set(bob_status["services"].values()) == {"not_requested"}

        # --- Bad input.
        twice = await alice.call("DELETE", "task-api", "/api/v1/me")
        assert twice.status_code == 202, twice.text
        assert twice.json() == accepted
        assert (await erasure_status(alice))["erasure_id"] == accepted["erasure_id"]
        unknown = f"nobody-{uuid.uuid4()}"
        missing = await olga.call("DELETE", "task-api", f"/api/v1/users/{unknown}")
        assert missing.status_code == 404, missing.text
        not_yours = await bob.call("DELETE", "task-api", "/api/v1/users/alice")
        assert not_yours.status_code == 404, not_yours.text
        peek_status = await bob.call("GET", "audit", "/api/v1/users/alice/erasure")
        assert peek_status.status_code == 404, peek_status.text
        # Bob is still there after trying.
        assert (await ok(bob, "GET", "task-api", "/api/v1/tasks"))["items"]
        await verify_ok(olga)


async def test_a_legal_hold_defers_only_the_audit_part(clients: dict[str, Client]) -> None:
    carol, olga = clients["carol"], clients["olga"]
    task = await create_task(carol, "walrus contract draft", due_at=at(86400).isoformat())
    await eventually(lambda: scheduled(carol), lambda ids: task["id"] in ids, 15, "her schedule")
    await eventually(
        lambda: audit_items(olga, user_id="carol"),
        lambda items: "task.created" in {e["type"] for e in items},
        20,
        "carol's audit entries",
    )
    placed = await olga.call(
        "POST", "audit", "/api/v1/audit/holds", json={"user_id": "carol", "reason": "litigation"}
    )
    assert placed.status_code == 201, placed.text

    erase = await carol.call("DELETE", "task-api", "/api/v1/me")
    assert erase.status_code == 202, erase.text
    others = dict.fromkeys(SERVICES - {"audit"}, "completed")
    status = await eventually(
        lambda: erasure_status(carol),
        lambda s: {k: s["services"][k] for k in others} == others,
        30,
        "carol's erasure in the other services",
    )
    assert status["services"]["audit"] == "deferred_legal_hold", status
    assert status["done"] is False
    # The rest is erased; the audit entries are held, still readable to the operator.
    assert (await ok(carol, "GET", "task-api", "/api/v1/tasks"))["items"] == []
    assert (await carol.call("GET", "notify", "/api/v1/notifications")).status_code == 410
    held = await audit_items(olga, user_id="carol", type="task.created")
    assert [e["data"]["title"] for e in held] == ["walrus contract draft"]
    assert not any(e["erased"] for e in held)
    deferred = await audit_items(olga, type="audit.erasure.deferred")
    assert deferred, "the deferral is itself an audit entry"

    released = await olga.call(
        "DELETE", "audit", "/api/v1/audit/holds", params={"user_id": "carol"}
    )
    assert released.status_code == 204, released.text
    status = await eventually(
        lambda: erasure_status(carol), lambda s: s["done"] is True, 20, "the release"
    )
    assert status["services"] == dict.fromkeys(SERVICES, "completed")
    shredded = await audit_items(olga, user_id="carol", type="task.created")
    assert [e["data"]["title"] for e in shredded] == ["[erased]"]
    assert all(e["erased"] for e in shredded)
    assert [e for e in await audit_items(olga, q="walrus") if e["user_id"] == "carol"] == []
    await verify_ok(olga)
