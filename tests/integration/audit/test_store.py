"""The chain writer and verifier on the real PostgreSQL: idempotence, races, tampering."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from audit_store.digests import Signer, create_digests
from audit_store.ingest import ChainWriter
from audit_store.ports import Clock
from audit_store.verify import verify
from tests.integration.audit.support import ListDeadLetters, records
from tests.unit.audit.factories import T0, event_bytes, task_payload

SIGNER = Signer("hmac-sha256", "k" * 40, "k1")


def fixed_clock() -> Clock:
    return lambda: T0 + timedelta(hours=1)


def events(n: int, user: str = "alice") -> list[tuple[bytes, str]]:
    return [
        (event_bytes(task_payload(user=user, title=f"entry {i}"), user), user) for i in range(n)
    ]


async def test_replaying_a_batch_writes_nothing_and_keeps_the_chain(pool: asyncpg.Pool) -> None:
    writer = ChainWriter(pool, ListDeadLetters(), fixed_clock())
    batch = records(events(300))
    first = await writer.write(batch[:200])
    again = await writer.write(batch[100:])  # overlaps the first: an at-least-once replay

    assert (first.inserted, again.inserted, again.replayed) == (200, 100, 100)
    assert await pool.fetchval("SELECT count(*) FROM audit_entries") == 300
    report = await verify(pool, SIGNER)
    assert report.ok and report.checked == 300


async def test_same_event_id_at_a_new_offset_stays_one_entry(pool: asyncpg.Pool) -> None:
    writer = ChainWriter(pool, ListDeadLetters(), fixed_clock())
    payloads = events(10)
    await writer.write(records(payloads))
    result = await writer.write(records(payloads[:4], first_offset=10))

    assert (result.inserted, result.duplicates) == (0, 4)
    head = await pool.fetchrow("SELECT seq, last_offset FROM audit_chain_heads")
    assert (head["seq"], head["last_offset"]) == (10, 13)
    assert (await verify(pool, SIGNER)).ok


async def test_racing_writers_with_shared_event_ids_never_break_a_chain(
    pool: asyncpg.Pool,
) -> None:
    shared = events(400)
    a = ChainWriter(pool, ListDeadLetters(), fixed_clock())
    b = ChainWriter(pool, ListDeadLetters(), fixed_clock())
    # The same events on two partitions (two chains), written concurrently in slices.
    left, right = records(shared, partition=0), records(shared, partition=1)
    for i in range(0, 400, 50):
        await asyncio.gather(a.write(left[i : i + 50]), b.write(right[i : i + 50]))

    assert await pool.fetchval("SELECT count(*) FROM audit_entries") == 400
    report = await verify(pool, SIGNER)
    assert report.ok, report.as_json()


@pytest.mark.parametrize(
    "tamper",
    [
        'UPDATE audit_entries SET data = \'{"title": "forged"}\' WHERE chain_seq = 7',
        "UPDATE audit_entries SET user_id = 'mallory' WHERE chain_seq = 7",
        "UPDATE audit_entries SET occurred_at = occurred_at + interval '1 second'"
        " WHERE chain_seq = 7",
        "DELETE FROM audit_entries WHERE chain_seq = 7",
    ],
    ids=["data", "user", "time", "delete"],
)
async def test_an_edit_in_sql_is_caught_and_named(pool: asyncpg.Pool, tamper: str) -> None:
    writer = ChainWriter(pool, ListDeadLetters(), fixed_clock())
    await writer.write(records(events(20)))
    target = await pool.fetchval("SELECT event_id FROM audit_entries WHERE chain_seq = 7")
    assert (await verify(pool, SIGNER)).ok

    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(tamper)  # the trigger refuses an ordinary edit
        # Someone able to bypass triggers (a superuser) is still caught by the chain.
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(tamper)

    report = await verify(pool, SIGNER)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad.seq == 7
    assert report.first_bad.event_id in (target, None)  # a deleted entry has no row to name


async def test_rewriting_the_whole_chain_is_caught_by_the_signed_digest(
    pool: asyncpg.Pool,
) -> None:
    writer = ChainWriter(pool, ListDeadLetters(), fixed_clock())
    await writer.write(records(events(5)))
    assert await create_digests(pool, SIGNER, fixed_clock()) == 1
    await writer.write(records(events(5), first_offset=5))
    assert await create_digests(pool, SIGNER, fixed_clock()) == 1

    # Forge entry 3 and recompute every later hash and the head: the chain alone is fine...
    from audit_store.chain import entry_hash
    from audit_store.verify import _COLUMNS, entry_of

    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("UPDATE audit_entries SET user_id = 'mallory' WHERE chain_seq = 3")
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM audit_entries ORDER BY chain_seq")  # noqa: S608
        prev = rows[0]["prev_hash"]
        for row in rows:
            new = entry_hash(prev, entry_of(row))
            await conn.execute(
                "UPDATE audit_entries SET prev_hash = $1, hash = $2 WHERE chain_seq = $3",
                prev,
                new,
                row["chain_seq"],
            )
            prev = new
        await conn.execute("UPDATE audit_chain_heads SET hash = $1", prev)

    report = await verify(pool, SIGNER)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad.reason == "entry hash differs from its signed digest"
    assert report.first_bad.seq == 5  # the first digest that vouched for the forged range


async def test_a_fake_tombstone_is_not_accounted_for(pool: asyncpg.Pool) -> None:
    writer = ChainWriter(pool, ListDeadLetters(), fixed_clock())
    await writer.write(records(events(5)))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE audit_entries SET data = NULL, user_id = NULL, purged_at = now()"
            " WHERE chain_seq = 2"
        )
    report = await verify(pool, SIGNER)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad.reason == "1 tombstones not accounted for by purge records"


async def test_a_partition_that_restarts_from_offset_zero_is_not_mistaken_for_a_replay(
    pool: asyncpg.Pool,
) -> None:
    # A local broker (Tansu) forgets its log on restart: offsets begin again at 0.
    writer = ChainWriter(pool, ListDeadLetters(), fixed_clock())
    before = events(10)
    await writer.write(records(before))
    result = await writer.write(records(before[8:], first_offset=8))
    assert (result.inserted, result.replayed) == (0, 2)  # an ordinary replay
    result = await writer.write(records(events(5)))  # offsets 0..4 again, new event ids

    assert result.inserted == 5
    head = await pool.fetchrow("SELECT seq, last_offset FROM audit_chain_heads")
    assert (head["seq"], head["last_offset"]) == (15, 4)
    more = await writer.write(records(events(2), first_offset=5))
    assert more.inserted == 2
    assert (await verify(pool, SIGNER)).ok
