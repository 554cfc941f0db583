"""SQL of the entry writer: bulk insert with `unnest`, and the chain-head rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from audit_store.chain import GENESIS

Row = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Head:
    """Where a chain ends: its last seq and hash, and the last source offset consumed."""

    seq: int
    hash: str
    last_offset: int


INSERT_SQL = """
INSERT INTO audit_entries (event_id, chain_id, chain_seq, source_offset, type, source,
    subject, user_id, task_id, occurred_at, recorded_at, data, trace_id, snapshot,
    prev_hash, hash, search, format, sealed)
SELECT e, c, s, o, t, src, sub, u, tk, oc, rc, d::json, tr, sn, ph, h,
    to_tsvector('english'::regconfig, st), 2, sl
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[],
    $12::text[], $13::text[], $14::boolean[], $15::text[], $16::text[], $17::text[],
    $18::text[])
    AS r(e, c, s, o, t, src, sub, u, tk, oc, rc, d, tr, sn, ph, h, st, sl)
ON CONFLICT (event_id) DO NOTHING
"""

ENSURE_HEADS_SQL = """
INSERT INTO audit_chain_heads (chain_id, hash, source_topic, source_partition, updated_at)
SELECT c, $4, t, p, $5 FROM unnest($1::text[], $2::text[], $3::int[]) AS r(c, t, p)
ON CONFLICT (chain_id) DO NOTHING
"""

LOCK_HEADS_SQL = """
SELECT chain_id, seq, hash, last_offset FROM audit_chain_heads
WHERE chain_id = ANY($1::text[]) ORDER BY chain_id FOR UPDATE
"""

UPDATE_HEADS_SQL = """
UPDATE audit_chain_heads h
SET seq = r.s, hash = r.h, last_offset = r.o, dlq_count = h.dlq_count + r.d,
    last_latency_s = r.l, updated_at = $7
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
    $6::float8[]) AS r(c, s, h, o, d, l)
WHERE h.chain_id = r.c
"""


async def insert_rows(conn: asyncpg.Connection, rows: Sequence[Row]) -> int:
    """Bulk insert; returns how many rows went in (conflicts on event id are skipped)."""
    if not rows:
        return 0
    columns = [list(col) for col in zip(*rows, strict=True)]
    status: str = await conn.execute(INSERT_SQL, *columns)
    return int(status.rsplit(" ", 1)[-1])


async def lock_heads(
    conn: asyncpg.Connection,
    chains: dict[str, tuple[str, int]],
    now: datetime,
    ensure: bool = True,
) -> dict[str, Head]:
    """Create missing heads, then lock them all (sorted, so writers never deadlock)."""
    ids = sorted(chains)
    if ensure:
        await conn.execute(
            ENSURE_HEADS_SQL,
            ids,
            [chains[c][0] for c in ids],
            [chains[c][1] for c in ids],
            GENESIS,
            now,
        )
    found = await conn.fetch(LOCK_HEADS_SQL, ids)
    if len(found) < len(ids) and not ensure:
        return await lock_heads(conn, chains, now, ensure=True)
    return {r["chain_id"]: Head(r["seq"], r["hash"], r["last_offset"]) for r in found}


async def existing(conn: asyncpg.Connection, event_ids: list[str]) -> set[str]:
    if not event_ids:
        return set()
    found = await conn.fetch(
        "SELECT event_id FROM audit_entries WHERE event_id = ANY($1::text[])", event_ids
    )
    return {r["event_id"] for r in found}
