"""The verifier's checks, fed rows in memory (no database)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from audit_store.chain import GENESIS
from audit_store.db.entries import Head
from audit_store.digests import Digest, Signer
from audit_store.ingest import chain_entries
from audit_store.records import AuditRecord, Origin, to_record
from audit_store.verify import ChainChecker, check_digests
from tests.unit.audit.factories import T0, event_bytes, task_payload

COLUMNS = (
    "event_id", "chain_id", "chain_seq", "source_offset", "type", "source", "subject",
    "user_id", "task_id", "occurred_at", "recorded_at", "data", "trace_id", "snapshot",
    "prev_hash", "hash",
)  # fmt: skip
SIGNER = Signer("hmac-sha256", "k" * 40, "k1")


def rows(n: int) -> list[dict[str, Any]]:
    recs = []
    for i in range(n):
        rec = to_record(Origin("taskflow.tasks", 0, i), None, event_bytes(task_payload()), [])
        assert isinstance(rec, AuditRecord)
        recs.append(rec)
    built, _ = chain_entries(Head(0, GENESIS, -1), recs, T0 + timedelta(hours=1))
    return [
        dict(zip(COLUMNS, row[:16], strict=True))
        | {"purged_at": None, "format": 2, "sealed": row[17], "erased_at": None}
        for row in built
    ]


def check(chain: list[dict[str, Any]]) -> ChainChecker:
    checker = ChainChecker("taskflow.tasks/0", frozenset({len(chain)}))
    for row in chain:
        if not checker.feed(row):
            break
    checker.finish(len(chain), chain[-1]["hash"])
    return checker


def test_an_intact_chain_verifies() -> None:
    checker = check(rows(5))
    assert checker.bad is None and checker.checked == 5


def test_changed_content_is_named() -> None:
    chain = rows(5)
    chain[2]["user_id"] = "mallory"
    bad = check(chain).bad
    assert bad is not None and (bad.seq, bad.event_id) == (3, chain[2]["event_id"])
    assert bad.reason == "content does not match its hash"


def test_a_missing_entry_is_named_by_its_seq() -> None:
    chain = rows(5)
    del chain[1]
    bad = check(chain).bad
    assert bad is not None and bad.seq == 2 and bad.event_id is None


def test_a_missing_tail_is_caught_by_the_head() -> None:
    chain = rows(5)
    checker = ChainChecker("taskflow.tasks/0")
    for row in chain[:3]:
        checker.feed(row)
    assert not checker.finish(5, chain[-1]["hash"])
    assert checker.bad is not None and checker.bad.seq == 4


def test_a_tombstone_bridges_the_gap_but_its_hash_must_still_link() -> None:
    chain = rows(5)
    chain[1] |= {"data": None, "user_id": None, "purged_at": T0}
    assert check(chain).bad is None and check(chain).tombstones == 1
    chain[1]["hash"] = "0" * 64
    bad = check(chain).bad
    assert bad is not None and bad.seq == 3 and "prev_hash" in bad.reason


def test_a_cleared_row_without_tombstone_mark_is_caught() -> None:
    chain = rows(3)
    chain[1]["data"] = None
    assert check(chain).bad is not None


def digest_row(chain: list[dict[str, Any]], to_seq: int, prev: str = "", frm: int = 1) -> dict:  # type: ignore[type-arg]
    digest = Digest(
        "taskflow.tasks/0", frm, to_seq, chain[to_seq - 1]["hash"], prev, "hmac-sha256", "k1", T0
    )
    return {
        "chain_id": digest.chain_id, "from_seq": frm, "to_seq": to_seq,
        "head_hash": digest.head_hash, "prev_signature": prev, "algorithm": digest.algorithm,
        "key_id": "k1", "created_at": T0, "signature": SIGNER.sign(digest.message()),
    }  # fmt: skip


def test_digests_are_checked_for_signature_linkage_and_head_hash() -> None:
    chain = rows(6)
    first = digest_row(chain, 3)
    second = digest_row(chain, 6, first["signature"], 4)
    seen = {3: chain[2]["hash"], 6: chain[5]["hash"]}
    assert check_digests("c", [first, second], seen, SIGNER) is None

    forged = second | {"head_hash": "f" * 64}
    assert check_digests("c", [first, forged], seen, SIGNER).reason == (  # type: ignore[union-attr]
        "digest signature is invalid"
    )
    unlinked = digest_row(chain, 6, "", 4)
    assert check_digests("c", [first, unlinked], seen, SIGNER).reason == (  # type: ignore[union-attr]
        "digest chain is broken"
    )
    assert check_digests("c", [first], {3: "e" * 64}, SIGNER).reason == (  # type: ignore[union-attr]
        "entry hash differs from its signed digest"
    )
    other_key = Signer("hmac-sha256", "z" * 40, "k1")
    assert check_digests("c", [first], seen, other_key) is not None
