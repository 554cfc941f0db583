"""Recompute every chain and check every digest; name the first entry that does not match."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from audit_store.chain import GENESIS, Entry, entry_hash
from audit_store.digests import Digest, Signer

PAGE = 5000
_COLUMNS = """chain_id, chain_seq, event_id, type, source, subject, user_id, task_id,
    occurred_at, recorded_at, data::text AS data, trace_id, snapshot, source_offset,
    prev_hash, hash, purged_at, format, sealed, erased_at"""


@dataclass(frozen=True, slots=True)
class BadEntry:
    chain_id: str
    seq: int
    event_id: str | None
    reason: str


@dataclass
class VerifyReport:
    ok: bool = True
    checked: int = 0
    first_bad: BadEntry | None = None
    chains: int = 0
    digests_checked: int = 0
    tombstones: int = 0
    # Format 1 entries whose personal fields an erasure removed (see docs/audit.md).
    redacted: int = 0

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["first_bad"] = asdict(self.first_bad) if self.first_bad else None
        return doc


@dataclass
class ChainChecker:
    """Feed one chain's rows in seq order; stops at the first mismatch."""

    chain_id: str
    watch: frozenset[int] = frozenset()  # seqs whose hash a digest vouches for
    seq: int = 0
    prev: str = GENESIS
    checked: int = 0
    tombstones: int = 0
    redacted: int = 0
    bad: BadEntry | None = None
    seen: dict[int, str] = field(default_factory=dict)

    def feed(self, row: Mapping[str, Any]) -> bool:
        """Check one row; False once the chain is broken."""
        seq, event_id = row["chain_seq"], row["event_id"]
        if seq != self.seq + 1:
            return self._fail(self.seq + 1, None, f"entry missing (next stored seq is {seq})")
        if row["prev_hash"] != self.prev:
            return self._fail(seq, event_id, "prev_hash does not match the previous entry")
        if row["purged_at"] is not None:
            # A tombstone's content is gone; its kept hashes still link the chain, and
            # the next entry's hash covers this one's hash.
            self.tombstones += 1
        elif row["erased_at"] is not None and row["format"] == 1:
            # A plaintext entry from before crypto-shredding whose personal fields an
            # erasure removed: like a tombstone, linked by its kept hashes.
            self.redacted += 1
        elif row["data"] is None or entry_hash(self.prev, entry_of(row)) != row["hash"]:
            return self._fail(seq, event_id, "content does not match its hash")
        self.seq, self.prev = seq, row["hash"]
        self.checked += 1
        if seq in self.watch:
            self.seen[seq] = row["hash"]
        return True

    def finish(self, head_seq: int, head_hash: str) -> bool:
        if self.bad is None and (self.seq, self.prev) != (head_seq, head_hash):
            return self._fail(
                self.seq + 1 if self.seq < head_seq else self.seq,
                None,
                f"chain ends at seq {self.seq} but its head says {head_seq}",
            )
        return self.bad is None

    def _fail(self, seq: int, event_id: str | None, reason: str) -> bool:
        self.bad = BadEntry(self.chain_id, seq, event_id, reason)
        return False


def entry_of(row: Mapping[str, Any]) -> Entry:
    return Entry(
        row["chain_id"],
        row["chain_seq"],
        row["event_id"],
        row["type"],
        row["source"],
        row["subject"],
        row["user_id"],
        row["task_id"],
        row["occurred_at"],
        row["recorded_at"],
        row["data"],
        row["trace_id"],
        row["snapshot"],
        row["source_offset"],
        row["format"],
        row["sealed"],
    )


def check_digests(
    chain_id: str, digests: list[Mapping[str, Any]], seen: Mapping[int, str], signer: Signer
) -> BadEntry | None:
    """Signatures valid, digests linked and contiguous, head hashes as stored."""
    prev_sig, prev_to = "", 0
    for row in digests:
        digest = Digest(
            row["chain_id"],
            row["from_seq"],
            row["to_seq"],
            row["head_hash"],
            row["prev_signature"],
            row["algorithm"],
            row["key_id"],
            row["created_at"],
        )
        to_seq = digest.to_seq
        checker = signer.for_digest(digest.algorithm, digest.key_id)
        if checker is None:
            reason = f"digest signed with unknown key id {digest.key_id!r} ({digest.algorithm})"
            return BadEntry(chain_id, to_seq, None, reason)
        if not checker.check(digest.message(), row["signature"]):
            return BadEntry(chain_id, to_seq, None, "digest signature is invalid")
        if digest.prev_signature != prev_sig or digest.from_seq != prev_to + 1:
            return BadEntry(chain_id, to_seq, None, "digest chain is broken")
        if seen.get(to_seq) != digest.head_hash:
            return BadEntry(chain_id, to_seq, None, "entry hash differs from its signed digest")
        prev_sig, prev_to = row["signature"], to_seq
    return None


async def verify(pool: asyncpg.Pool, signer: Signer) -> VerifyReport:
    """Walk every chain in seq order (paged) and check digests against it."""
    report = VerifyReport()
    # One snapshot for the whole walk: appends made meanwhile are not half-seen.
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        heads = await conn.fetch("SELECT chain_id, seq, hash FROM audit_chain_heads ORDER BY 1")
        for head in heads:
            cid = head["chain_id"]
            digests = await conn.fetch(
                "SELECT * FROM audit_digests WHERE chain_id = $1 ORDER BY to_seq", cid
            )
            checker = ChainChecker(cid, frozenset(d["to_seq"] for d in digests))
            await _walk(conn, checker)
            checker.finish(head["seq"], head["hash"])
            bad = checker.bad or check_digests(cid, digests, checker.seen, signer)
            report.chains += 1
            report.checked += checker.checked
            report.tombstones += checker.tombstones
            report.redacted += checker.redacted
            report.digests_checked += len(digests)
            if bad is not None and report.first_bad is None:
                report.ok, report.first_bad = False, bad
        total = await conn.fetchval("SELECT count(*) FROM audit_entries")
        purges = await conn.fetchrow(_PURGE_ACCOUNTING)
        erasures = await conn.fetchrow(_ERASURE_ACCOUNTING)
    if report.ok and total != report.checked:
        report.ok = False
        report.first_bad = BadEntry("", 0, None, f"{total - report.checked} entries in no chain")
    # Every tombstone must come from a recorded purge: a blanked row that merely looks
    # like one (content cleared by someone bypassing the trigger) is not accounted for.
    if report.ok and not purges["purge_records_purged"]:
        unaccounted = report.tombstones - purges["recorded"]
        if unaccounted > 0:
            report.ok = False
            report.first_bad = BadEntry(
                "", 0, None, f"{unaccounted} tombstones not accounted for by purge records"
            )
    # Likewise every redacted entry must come from a recorded erasure.
    if report.ok and not erasures["records_purged"] and report.redacted > erasures["recorded"]:
        report.ok = False
        unaccounted = report.redacted - erasures["recorded"]
        report.first_bad = BadEntry(
            "", 0, None, f"{unaccounted} redacted entries not accounted for by erasure records"
        )
    return report


_PURGE_ACCOUNTING = """
SELECT coalesce(sum((data->>'purged')::bigint) FILTER (WHERE purged_at IS NULL), 0) AS recorded,
       count(*) FILTER (WHERE purged_at IS NOT NULL) > 0 AS purge_records_purged
FROM audit_entries WHERE chain_id = 'audit-service/0' AND type = 'audit.purged'
"""


_ERASURE_ACCOUNTING = """
SELECT coalesce(sum((data->>'legacy_redacted')::bigint) FILTER (WHERE purged_at IS NULL), 0)
           AS recorded,
       count(*) FILTER (WHERE purged_at IS NOT NULL) > 0 AS records_purged
FROM audit_entries WHERE chain_id = 'audit-service/0' AND type = 'audit.erasure.completed'
"""


async def _walk(conn: asyncpg.Connection, checker: ChainChecker) -> None:
    after = 0
    while True:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM audit_entries "  # noqa: S608 - constant column list
            "WHERE chain_id = $1 AND chain_seq > $2 ORDER BY chain_seq LIMIT $3",
            checker.chain_id,
            after,
            PAGE,
        )
        for row in rows:
            if not checker.feed(row):
                return
        if len(rows) < PAGE:
            return
        after = rows[-1]["chain_seq"]
