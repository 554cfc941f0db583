"""The idempotent, chain-keeping batch writer used by the audit dataflow's sink.

Per batch, in one transaction: lock the chain heads; skip re-deliveries (at or below
the head's offset and already stored) and event ids stored before (a relay re-publishing
at a new offset); chain the rest in offset order; insert with `unnest` + `ON CONFLICT
DO NOTHING`; dead-letter poison; advance the heads. If a concurrent writer stored one of
our event ids first, the insert count is short: roll back and redo the batch looking ids
up first, so a chain never references an entry that is not there.

Personal fields are sealed with the user's data key (`audit_store.crypto`), locked for the
batch; a user whose key is shredded gets their personal fields dropped and no search words.
`user.erased` entries stored by the batch shred in the same transaction
(`audit_store.erasure`), so a crash mid-erasure leaves nothing half done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from audit_store import crypto
from audit_store.chain import FORMAT_SEALED, Entry, entry_hash
from audit_store.crypto import Keyring
from audit_store.db.entries import (
    UPDATE_HEADS_SQL,
    Head,
    Row,
    existing,
    insert_rows,
    lock_heads,
)
from audit_store.db.keys import lock_keys
from audit_store.erasure import apply_stored
from audit_store.ports import DeadLetters
from audit_store.records import AuditRecord, Origin, Poison
from audit_store.service_entries import LOCAL_TOPIC

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
# A chain head's new row: chain_id, seq, hash, last offset, new dead letters, latency (s).
_HeadUpdate = tuple[str, int, str, int, int, float | None]
# What a record is stored as: (sealed personal fields or None, full-text words).
Seal = Callable[[AuditRecord], tuple[str | None, str]]


def unsealed(rec: AuditRecord) -> tuple[str | None, str]:
    """Records without personal fields (the service's own entries)."""
    return None, rec.search_text


class _ShortInsert(Exception):
    """Another writer stored one of this batch's event ids first: redo the batch."""


@dataclass
class WriteResult:
    inserted: int = 0
    duplicates: int = 0
    replayed: int = 0
    dead_lettered: int = 0


def chain_entries(
    head: Head, records: Sequence[AuditRecord], recorded_at: datetime, seal: Seal = unsealed
) -> tuple[list[Row], Head]:
    """Hash `records` onto `head` in order; returns insert rows and the new head."""
    rows: list[Row] = []
    seq, prev = head.seq, head.hash
    for rec in records:
        seq += 1
        offset = rec.origin.offset if rec.origin.offset >= 0 else None
        sealed, words = seal(rec)
        entry = Entry(
            rec.origin.chain_id,
            seq,
            rec.event_id,
            rec.type,
            rec.source,
            rec.subject,
            rec.user_id,
            rec.task_id,
            rec.occurred_at,
            recorded_at,
            rec.data_json,
            rec.trace_id,
            rec.snapshot,
            offset,
            FORMAT_SEALED,
            sealed,
        )
        digest = entry_hash(prev, entry)
        rows.append(
            (
                rec.event_id,
                entry.chain_id,
                seq,
                offset,
                rec.type,
                rec.source,
                rec.subject,
                rec.user_id,
                rec.task_id,
                rec.occurred_at,
                recorded_at,
                rec.data_json,
                rec.trace_id,
                rec.snapshot,
                prev,
                digest,
                words,
                sealed,
            )
        )
        prev = digest
    return rows, Head(seq, prev, head.last_offset)


class ChainWriter:
    """Writes dataflow batches; safe to call again with the same or overlapping input."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dead_letters: DeadLetters,
        clock: Callable[[], datetime],
        keyring: Keyring | None = None,
    ) -> None:
        self._pool = pool
        self._dlq = dead_letters
        self._clock = clock
        self._keyring = keyring or _local_keyring()
        self._known: set[str] = set()  # chains whose head row exists

    async def write(self, items: Sequence[AuditRecord | Poison]) -> WriteResult:
        """Store a batch. The first attempt trusts that event ids are new (replays are
        caught by offset); if the insert comes up short, redo it looking ids up first."""
        if not items:
            return WriteResult()
        retry = (_ShortInsert, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    result = await self._write(conn, items, lookup=attempt > 1)
                self._known.update(item.origin.chain_id for item in items)
                return result
            except retry as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                log.info("audit batch redone (attempt %d): %s", attempt, exc)
        raise AssertionError("unreachable")

    async def _write(
        self, conn: asyncpg.Connection, items: Sequence[AuditRecord | Poison], lookup: bool
    ) -> WriteResult:
        now = self._clock()
        by_chain, origins = _group_by_chain(items)
        heads = await lock_heads(conn, origins, now, ensure=not self._known.issuperset(origins))
        replayed, stored = await _stored_ids(conn, by_chain, heads, lookup)
        result = WriteResult()
        rows: list[Row] = []
        poison: list[Poison] = []
        head_updates: list[_HeadUpdate] = []
        plans = {
            cid: _sort_out(chain_items, heads[cid], replayed, stored)
            for cid, chain_items in by_chain.items()
        }
        new = [rec for plan in plans.values() for rec in plan.records]
        seal = await self._sealer(conn, new, now)
        for cid, chain_items in by_chain.items():
            head, plan = heads[cid], plans[cid]
            chain_rows, new_head = chain_entries(head, plan.records, now, seal)
            rows.extend(chain_rows)
            poison.extend(plan.poison)
            result.replayed += plan.replayed
            result.duplicates += plan.duplicates
            newest = chain_items[-1].origin
            head_updates.append(_head_update(cid, head, new_head, newest, plan, now))
        result.inserted = await self._store(conn, rows, head_updates, poison, now)
        result.dead_lettered = len(poison)
        erasures = await apply_stored(conn, new, now)
        if erasures:
            await append_local(conn, erasures, now)
        return result

    async def _sealer(
        self, conn: asyncpg.Connection, records: Collection[AuditRecord], now: datetime
    ) -> Seal:
        """Lock (or create) the data keys of the batch's users and seal with them."""
        users = {rec.user_id for rec in records if rec.personal_json is not None}
        if not users:
            return unsealed
        keys = await lock_keys(conn, users, self._keyring, now)
        aeads = {u: self._keyring.unwrap(u, *k) for u, k in keys.items() if k is not None}

        def seal(rec: AuditRecord) -> tuple[str | None, str]:
            if rec.personal_json is None:
                return None, rec.search_text
            aead = aeads.get(rec.user_id)
            if aead is None:  # erased: the personal fields are never stored, nor indexed
                return None, rec.type
            return crypto.seal(aead, rec.event_id, rec.user_id, rec.personal_json), rec.search_text

        return seal

    async def _store(
        self,
        conn: asyncpg.Connection,
        rows: list[Row],
        head_updates: list[_HeadUpdate],
        poison: list[Poison],
        now: datetime,
    ) -> int:
        """Insert the rows, advance the heads, dead-letter poison; returns the rows inserted."""
        inserted = await insert_rows(conn, rows)
        if inserted != len(rows):
            raise _ShortInsert(f"{len(rows) - inserted} event ids were stored concurrently")
        columns = [list(c) for c in zip(*head_updates, strict=True)]
        await conn.execute(UPDATE_HEADS_SQL, *columns, now)
        if poison:
            # Before commit: if the DLQ is unreachable the batch is redone, never lost.
            self._dlq.send(poison)
        return inserted


@dataclass
class _ChainPlan:
    """What one chain's items of a batch come to."""

    records: list[AuditRecord] = field(default_factory=list)  # new: to chain and insert
    poison: list[Poison] = field(default_factory=list)
    new_dead_letters: int = 0  # poison above the head's offset (not a re-delivery)
    replayed: int = 0
    duplicates: int = 0
    reset: bool = False  # a new record at or below the head's offset: the partition restarted


def _group_by_chain(
    items: Sequence[AuditRecord | Poison],
) -> tuple[dict[str, list[AuditRecord | Poison]], dict[str, tuple[str, int]]]:
    """Items per chain in offset order, and each chain's (topic, partition)."""
    by_chain: dict[str, list[AuditRecord | Poison]] = {}
    origins: dict[str, tuple[str, int]] = {}
    for item in items:
        by_chain.setdefault(item.origin.chain_id, []).append(item)
        origins[item.origin.chain_id] = (item.origin.topic, item.origin.partition)
    for chain_items in by_chain.values():
        chain_items.sort(key=lambda i: i.origin.offset)
    return by_chain, origins


async def _stored_ids(
    conn: asyncpg.Connection,
    by_chain: dict[str, list[AuditRecord | Poison]],
    heads: dict[str, Head],
    lookup: bool,
) -> tuple[set[str], set[str]]:
    """(replayed, stored): the re-delivered ids, and every id of the batch known stored."""
    # Records at or below a head's offset are normally re-deliveries after a restart
    # (already stored). One whose id is not stored means the partition restarted from
    # offset 0 (a local broker that lost its log): it is new, not a replay.
    below = [
        i.event_id
        for cid, its in by_chain.items()
        for i in its
        if isinstance(i, AuditRecord) and i.origin.offset <= heads[cid].last_offset
    ]
    stored = await existing(conn, below) if below else set()
    replayed = set(stored)
    if lookup:  # a redo: a concurrent writer may have stored some of the rest
        stored |= await existing(
            conn,
            [i.event_id for its in by_chain.values() for i in its if isinstance(i, AuditRecord)],
        )
    return replayed, stored


def _sort_out(
    chain_items: list[AuditRecord | Poison], head: Head, replayed: set[str], stored: set[str]
) -> _ChainPlan:
    """Sort one chain's items into new records, replays, duplicates and poison; adds the new
    records' ids to `stored`, so a repeat later in the batch is a duplicate."""
    plan = _ChainPlan()
    for item in chain_items:
        old = item.origin.offset <= head.last_offset
        if isinstance(item, Poison):
            plan.poison.append(item)  # re-sent if replayed: dead letters are at-least-once
            plan.new_dead_letters += 0 if old else 1
        elif item.event_id in replayed and old:
            plan.replayed += 1
        elif item.event_id in stored:
            plan.duplicates += 1
        else:
            plan.reset = plan.reset or old
            stored.add(item.event_id)
            plan.records.append(item)
    return plan


def _head_update(
    cid: str, head: Head, new_head: Head, newest: Origin, plan: _ChainPlan, now: datetime
) -> _HeadUpdate:
    """The chain head's new row: seq and hash, last offset seen, dead letters, latency."""
    last = newest.offset if plan.reset else max(head.last_offset, newest.offset)
    latency = (
        max(0.0, now.timestamp() - newest.timestamp_ms / 1000) if newest.timestamp_ms else None
    )
    return (cid, new_head.seq, new_head.hash, last, plan.new_dead_letters, latency)


def _local_keyring() -> Keyring:
    from audit_store.settings import AuditSettings

    return AuditSettings().keyring()


async def append_local(
    conn: asyncpg.Connection, records: Sequence[AuditRecord], now: datetime
) -> None:
    """Chain entries the service itself writes (purges, holds); call inside a transaction."""
    cid = records[0].origin.chain_id
    heads = await lock_heads(conn, {cid: (LOCAL_TOPIC, 0)}, now)
    rows, head = chain_entries(heads[cid], records, now)
    if await insert_rows(conn, rows) != len(rows):
        raise RuntimeError("a service audit entry id collided with a stored one")
    await conn.execute(
        "UPDATE audit_chain_heads SET seq = $2, hash = $3, updated_at = $4 WHERE chain_id = $1",
        cid,
        head.seq,
        head.hash,
        now,
    )
