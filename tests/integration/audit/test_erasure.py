"""Crypto-shredding on the real PostgreSQL: erasure, legal hold, reordering, replays, status."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from pydantic import SecretStr
from quart.typing import TestClientProtocol as Client

from audit_store import ingest
from audit_store.app import create_app
from audit_store.chain import GENESIS, Entry, entry_hash
from audit_store.db.keys import rewrap_keys
from audit_store.digests import Signer, create_digests
from audit_store.erasure import reapply
from audit_store.ingest import ChainWriter
from audit_store.personal import ERASED, merge
from audit_store.records import AuditRecord
from audit_store.retention import place_hold, release_hold
from audit_store.settings import AuditSettings
from audit_store.verify import verify
from events.payloads import UserErased, UserErasureApplied
from tests.integration.audit.support import ListDeadLetters, records
from tests.unit.audit.factories import (
    T0,
    event_bytes,
    notification_payload,
    reminder_payload,
    task_payload,
)
from webapi.auth import AuthSettings, issue_token

SECRET = "s" * 40
SETTINGS = AuditSettings()
SIGNER = Signer.from_settings(SETTINGS)
ERASURE = uuid.UUID("01900000-0000-7000-8000-0000000e0001")
WORDS = ("walk the dog", "corner shop", "home", "buy milk", "New task")


def token(user: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, user, roles)}"}


ALICE, BOB, OPS = token("alice"), token("bob"), token("ops", "operator")


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now


def erased(user: str = "alice", erasure_id: uuid.UUID = ERASURE) -> bytes:
    payload = UserErased(user_id=user, erasure_id=erasure_id, requested_at=T0, requested_by="self")
    return event_bytes(payload, user)


def applied(service: str, user: str = "alice") -> bytes:
    payload = UserErasureApplied(
        user_id=user,
        erasure_id=ERASURE,
        service=service,
        applied_at=T0 + timedelta(minutes=1),
    )
    return event_bytes(payload, user)


def history(user: str) -> list[tuple[bytes, str]]:
    """A task, its reminder and its notification per user; the words are in WORDS."""
    out = [
        (event_bytes(task_payload(user=user, title=f"walk the dog {i}"), user), user)
        for i in range(4)
    ]
    out.append((event_bytes(reminder_payload(user), user), user))
    out.append((event_bytes(notification_payload(user), user), user))
    return out


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def writer(pool: asyncpg.Pool, clock: Clock) -> ChainWriter:
    return ChainWriter(pool, ListDeadLetters(), clock, SETTINGS.keyring())


@pytest.fixture
async def client(audit_db: str, clock: Clock) -> AsyncIterator[Client]:
    settings = AuditSettings(database_url=audit_db)
    app = create_app(settings, AuthSettings(jwt_secret=SECRET), None, clock, background=False)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def get_json(client: Client, path: str, headers: dict[str, str], status: int = 200) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status_code == status, await response.get_data()
    return orjson.loads(await response.get_data())


async def entries_of(client: Client, user: str, extra: str = "") -> list[dict[str, Any]]:
    page = await get_json(client, f"/api/v1/audit?user_id={user}&limit=200{extra}", OPS)
    return list(page["items"])


async def service_entries(pool: asyncpg.Pool, event_type: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT user_id, data::text AS data FROM audit_entries WHERE type = $1 ORDER BY entry_id",
        event_type,
    )
    return [{"user_id": r["user_id"], **orjson.loads(r["data"])} for r in rows]


async def assert_nothing_personal(client: Client, pool: asyncpg.Pool, user: str) -> None:
    """Search, full text, both exports and the database itself hold none of `user`'s words."""
    token_of = token(user)
    shown = [
        orjson.dumps(await entries_of(client, user)),
        await (await client.get(f"/api/v1/audit/export?user_id={user}", headers=OPS)).get_data(),
        await (
            await client.get(f"/api/v1/audit/export?format=csv&user_id={user}", headers=OPS)
        ).get_data(),
        await (await client.get("/api/v1/me/export", headers=token_of)).get_data(),
    ]
    for body in shown:
        assert not any(w.encode() in body for w in WORDS), body[:400]
    for word in ("dog", "milk", "shop"):
        hits = await get_json(client, f"/api/v1/audit?q={word}&user_id={user}", OPS)
        assert hits["items"] == [], word
    in_db = await pool.fetchval(
        "SELECT count(*) FROM audit_entries WHERE user_id = $1"
        " AND (search @@ to_tsquery('english', 'dog | milk | shop | home | corner')"
        " OR data::text ~ 'dog|milk|shop|home')",
        user,
    )
    assert in_db == 0


async def test_an_erased_user_reads_as_erased_everywhere_and_the_trail_still_verifies(
    writer: ChainWriter, pool: asyncpg.Pool, client: Client, clock: Clock
) -> None:
    await writer.write(records(history("alice") + history("bob")))
    assert await create_digests(pool, SIGNER, clock) == 1
    before = await entries_of(client, "alice")
    assert {e["data"].get("title") for e in before} >= {"walk the dog 0", "buy milk"}
    assert not any(e["erased"] for e in before)
    clock.now += timedelta(minutes=10)

    await writer.write(records([(erased(), "alice")], partition=1))

    after = await entries_of(client, "alice")
    tasks = [e for e in after if e["type"] == "task.created"]
    assert len(tasks) == 4 and all(e["erased"] for e in after)
    assert {e["data"]["title"] for e in tasks} == {ERASED}
    assert tasks[0]["data"]["description"] == ERASED and tasks[0]["data"]["tags"] == ERASED
    assert tasks[0]["data"]["version"] == 1 and tasks[0]["data"]["user_id"] == "alice"
    # Count, order, types, times and hashes of the trail stay.
    assert [e["type"] for e in after[:2]] == ["audit.erasure.completed", "user.erased"]
    assert [(e["event_id"], e["type"], e["hash"]) for e in after[2:]] == [
        (e["event_id"], e["type"], e["hash"]) for e in before
    ]
    await assert_nothing_personal(client, pool, "alice")
    # Bob is untouched: decrypted, searchable, exported.
    bob = await entries_of(client, "bob")
    assert not any(e["erased"] for e in bob)
    assert {e["data"]["title"] for e in bob if e["type"] == "task.created"} == {
        f"walk the dog {i}" for i in range(4)
    }
    assert len((await get_json(client, "/api/v1/audit?q=dog", OPS))["items"]) == 4
    export = await get_json(client, "/api/v1/me/export", BOB)
    assert export["user_id"] == "bob" and len(export["entries"]) == 6
    assert not any(e["erased"] for e in export["entries"])
    # The erasure is an entry of its own, with counts and ids only.
    (done,) = await service_entries(pool, "audit.erasure.completed")
    assert done["user_id"] == "alice" and done["erasure_id"] == str(ERASURE)
    assert (done["entries"], done["sealed_entries"], done["legacy_redacted"]) == (7, 6, 0)
    # The chains and the digest signed before the erasure still verify, and new ones too.
    assert await create_digests(pool, SIGNER, clock) == 2
    report = await get_json(client, "/api/v1/audit/verify", OPS)
    assert report["ok"] and report["digests_checked"] == 3, report


async def test_an_event_arriving_after_the_erasure_is_stored_already_unreadable(
    writer: ChainWriter, pool: asyncpg.Pool, client: Client
) -> None:
    # Task events are keyed by task, `user.erased` by user: another partition may deliver
    # a task event of alice after her erasure.
    await writer.write(records([(erased(), "alice")], partition=1))
    late = history("alice")
    await writer.write(records(late[:3], partition=0))
    await writer.write(records(late[3:], partition=2))

    await assert_nothing_personal(client, pool, "alice")
    stored = await pool.fetch("SELECT sealed FROM audit_entries WHERE type = 'task.created'")
    assert len(stored) == 4 and all(r["sealed"] is None for r in stored)
    keys = await pool.fetch("SELECT wrapped_key FROM audit_user_keys WHERE user_id = 'alice'")
    assert [k["wrapped_key"] for k in keys] == [None]  # no new key was made for her
    assert (await verify(pool, SIGNER)).ok


async def test_a_replayed_erasure_is_applied_once(
    writer: ChainWriter, pool: asyncpg.Pool, client: Client
) -> None:
    await writer.write(records(history("alice")))
    event = records([(erased(), "alice")], partition=1)
    await writer.write(event)
    await writer.write(event)  # the same message again (a replay at the same offset)
    again = records([(erased(), "alice")], partition=1, first_offset=5)
    await writer.write(again)  # the same erasure under a new event id
    assert len(await service_entries(pool, "audit.erasure.completed")) == 1
    status = await get_json(client, "/api/v1/me/erasure", ALICE)
    assert status["services"]["audit"] == "completed"
    assert (await verify(pool, SIGNER)).ok


async def test_a_crash_mid_erasure_rolls_back_and_the_retry_completes_once(
    writer: ChainWriter, pool: asyncpg.Pool, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await writer.write(records(history("alice")))
    event = records([(erased(), "alice")], partition=1)
    real = ingest.append_local

    async def crash(*args: Any) -> None:
        raise ConnectionResetError("killed between shredding and recording it")

    # The key is shredded in the transaction, then the process dies before committing.
    monkeypatch.setattr(ingest, "append_local", crash)
    with pytest.raises(ConnectionResetError):
        await writer.write(event)
    assert await pool.fetchval("SELECT count(*) FROM audit_erasures") == 0
    assert await pool.fetchval("SELECT wrapped_key IS NOT NULL FROM audit_user_keys") is True
    assert len(await entries_of(client, "alice", "&q=dog")) == 4

    monkeypatch.setattr(ingest, "append_local", real)
    await writer.write(event)  # the restarted flow reads the message again
    await writer.write(event)
    assert len(await service_entries(pool, "audit.erasure.completed")) == 1
    await assert_nothing_personal(client, pool, "alice")
    assert (await verify(pool, SIGNER)).ok


async def test_a_legal_hold_defers_the_shredding_until_it_is_released(
    writer: ChainWriter, pool: asyncpg.Pool, client: Client, clock: Clock
) -> None:
    await writer.write(records(history("alice") + history("bob")))
    hold, _ = await place_hold(pool, "user", "alice", "case 7", "ops", clock)

    await writer.write(records([(erased(), "alice")], partition=1))

    status = await get_json(client, "/api/v1/me/erasure", ALICE)
    assert status["services"]["audit"] == "deferred_legal_hold" and not status["done"]
    (deferred,) = await service_entries(pool, "audit.erasure.deferred")
    assert deferred["holds"] == [str(hold.id)] and deferred["outcome"] == "deferred_legal_hold"
    # Held: still readable and searchable by the people the hold is for.
    assert len(await entries_of(client, "alice", "&q=dog")) == 4
    # A later event of alice is still sealed with her (held) key, so it is shredded too.
    await writer.write(records(history("alice")[:1], partition=2))

    await release_hold(pool, "ops", clock, kind="user", value="alice")

    (done,) = await service_entries(pool, "audit.erasure.completed")
    assert done["released_hold"] == str(hold.id) and done["sealed_entries"] == 7
    await assert_nothing_personal(client, pool, "alice")
    assert not any(e["erased"] for e in await entries_of(client, "bob"))
    status = await get_json(client, "/api/v1/users/alice/erasure", OPS)
    assert status["services"]["audit"] == "completed"
    report = await verify(pool, SIGNER)
    assert report.ok, report.as_json()


async def test_the_status_answers_per_service(writer: ChainWriter, client: Client) -> None:
    await writer.write(records(history("alice")))
    mine = await get_json(client, "/api/v1/me/erasure", ALICE)
    assert mine["erasure_id"] is None and set(mine["services"].values()) == {"not_requested"}
    await get_json(client, "/api/v1/users/nobody/erasure", OPS, 404)
    # A non-operator learns nothing of another user (404, as the task service's erase
    # call answers), known or not, and may ask about themselves.
    await get_json(client, "/api/v1/users/alice/erasure", BOB, 404)
    await get_json(client, "/api/v1/users/nobody/erasure", BOB, 404)
    own = await get_json(client, "/api/v1/users/alice/erasure", ALICE)
    assert own == mine

    # The notification service's report may arrive before the erasure itself.
    await writer.write(records([(applied("notifications"), "alice")], "taskflow.notifications"))
    await writer.write(records([(erased(), "alice")], partition=1))
    status = await get_json(client, "/api/v1/users/alice/erasure", OPS)
    assert status["erasure_id"] == str(ERASURE) and status["requested_by"] == "self"
    assert status["services"] == {
        "tasks": "completed",
        "notifications": "completed",
        "reminders": "pending",
        "audit": "completed",
    }
    assert status["done"] is False
    await writer.write(records([(applied("reminders"), "alice")], "taskflow.reminders"))
    assert (await get_json(client, "/api/v1/me/erasure", ALICE))["done"] is True
    stored = await get_json(client, "/api/v1/audit?type=user.erasure.applied", OPS)
    assert len(stored["items"]) == 2


async def legacy_entries(pool: asyncpg.Pool, user: str, n: int) -> list[AuditRecord]:
    """Entries as the writer stored them before crypto-shredding: format 1, plaintext data."""
    recs = [r for r in records(history(user)[:n], partition=3) if isinstance(r, AuditRecord)]
    prev, rows = GENESIS, []
    for seq, rec in enumerate(recs, 1):
        assert rec.personal_json is not None
        data = orjson.dumps(
            merge(orjson.loads(rec.data_json), orjson.loads(rec.personal_json)),
            option=orjson.OPT_SORT_KEYS,
        ).decode()
        entry = Entry(
            "taskflow.tasks/3", seq, rec.event_id, rec.type, rec.source, rec.subject,
            rec.user_id, rec.task_id, rec.occurred_at, T0, data, rec.trace_id, rec.snapshot,
            rec.origin.offset,
        )  # fmt: skip
        digest = entry_hash(prev, entry)
        rows.append((entry, prev, digest, rec.search_text))
        prev = digest
    async with pool.acquire() as conn:
        for entry, prev_hash, digest, words in rows:
            await conn.execute(
                "INSERT INTO audit_entries (event_id, chain_id, chain_seq, source_offset, type,"
                " source, subject, user_id, task_id, occurred_at, recorded_at, data, trace_id,"
                " snapshot, prev_hash, hash, search) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                " $9, $10, $11, $12::json, $13, $14, $15, $16, to_tsvector('english', $17))",
                entry.event_id, entry.chain_id, entry.chain_seq, entry.source_offset,
                entry.type, entry.source, entry.subject, entry.user_id, entry.task_id,
                entry.occurred_at, entry.recorded_at, entry.data_json, entry.trace_id,
                entry.snapshot, prev_hash, digest, words,
            )  # fmt: skip
        await conn.execute(
            "INSERT INTO audit_chain_heads (chain_id, seq, hash, source_topic, source_partition,"
            " last_offset, updated_at) VALUES ('taskflow.tasks/3', $1, $2, 'taskflow.tasks', 3,"
            " $3, $4)",
            len(rows),
            prev,
            len(rows) - 1,
            T0,
        )
    return recs


async def test_plaintext_entries_from_before_are_redacted_and_accounted_for(
    writer: ChainWriter, pool: asyncpg.Pool, client: Client
) -> None:
    await legacy_entries(pool, "alice", 5)
    # The same chain goes on in format 2 after the upgrade.
    await writer.write(records(history("alice")[5:], partition=3, first_offset=5))
    old = await entries_of(client, "alice")
    assert {e["data"].get("title") for e in old} >= {"walk the dog 0", "buy milk"}
    assert (await verify(pool, SIGNER)).ok

    await writer.write(records([(erased(), "alice")], partition=1))

    await assert_nothing_personal(client, pool, "alice")
    (done,) = await service_entries(pool, "audit.erasure.completed")
    assert done["legacy_redacted"] == 5 and done["sealed_entries"] == 1
    report = await verify(pool, SIGNER)
    assert report.ok and report.redacted == 5, report.as_json()
    # A plaintext entry blanked by someone else (bypassing the trigger) is not accounted for.
    async with pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE audit_entries SET erased_at = now(), data = '{}'::json"
            " WHERE type = 'user.erased'"
        )
        await conn.execute("UPDATE audit_entries SET format = 1 WHERE type = 'user.erased'")
    bad = await verify(pool, SIGNER)
    assert not bad.ok and bad.first_bad is not None
    assert bad.first_bad.reason == "1 redacted entries not accounted for by erasure records"


async def test_kek_rotation_rewraps_the_data_keys_and_a_wrong_kek_is_refused(
    writer: ChainWriter, pool: asyncpg.Pool, audit_db: str, clock: Clock
) -> None:
    await writer.write(records(history("alice")))
    old, new = SETTINGS.kek, SecretStr("5a" * 32)
    rotated = AuditSettings(database_url=audit_db, kek=new, kek_id="k2", kek_retired={"kek1": old})
    assert await rewrap_keys(pool, rotated.keyring()) == 1
    assert await rewrap_keys(pool, rotated.keyring()) == 0
    only_new = AuditSettings(database_url=audit_db, kek=new, kek_id="k2")
    wrong = AuditSettings(database_url=audit_db, kek=SecretStr("00" * 32), kek_id="k2")
    for settings, status in ((only_new, 200), (wrong, 500)):
        app = create_app(settings, AuthSettings(jwt_secret=SECRET), None, clock, background=False)
        async with app.test_app() as test_app:
            test_client = test_app.test_client()
            response = await test_client.get("/api/v1/me/export", headers=ALICE)
            assert response.status_code == status
            search = await test_client.get("/api/v1/audit", headers=ALICE)
            assert search.status_code == status
            if status == 200:
                body = orjson.loads(await response.get_data())
                assert "walk the dog 0" in {e["data"].get("title") for e in body["entries"]}
            else:
                assert b"key-unavailable" in await response.get_data()


async def test_reapplying_erasures_after_a_restore_shreds_again(
    writer: ChainWriter, pool: asyncpg.Pool, client: Client, clock: Clock
) -> None:
    await writer.write(records(history("alice") + history("bob")))
    key = await pool.fetchval("SELECT wrapped_key FROM audit_user_keys WHERE user_id = 'alice'")
    await writer.write(records([(erased(), "alice")], partition=1))
    # A restored backup brought alice's wrapped key back.
    await pool.execute(
        "UPDATE audit_user_keys SET wrapped_key = $1, kek_id = 'kek1', shredded_at = NULL"
        " WHERE user_id = 'alice'",
        key,
    )
    assert not any(e["erased"] for e in await entries_of(client, "alice"))

    async with pool.acquire() as conn, conn.transaction():
        redone = await reapply(conn, clock())
        await ingest.append_local(conn, redone, clock())
    async with pool.acquire() as conn, conn.transaction():
        assert await reapply(conn, clock()) == []  # nothing left to do

    assert [r.user_id for r in redone] == ["alice"]
    await assert_nothing_personal(client, pool, "alice")
    assert (await verify(pool, SIGNER)).ok
