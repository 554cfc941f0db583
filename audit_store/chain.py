"""Hash chaining: each entry's hash covers its canonical JSON and the previous hash.

One chain per source (topic, partition), so parallel writers never contend. Pure code,
shared by the writer and the verifier so both always agree on the bytes hashed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored audit entry as the hash sees it (every column except the hashes)."""

    chain_id: str
    chain_seq: int
    event_id: str
    type: str
    source: str
    subject: str
    user_id: str
    task_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    data_json: str
    trace_id: str | None
    snapshot: bool
    source_offset: int | None
    # 1: `data` is the whole event data, in clear (entries written before crypto-shredding).
    # 2: `data` is its clear part and `sealed` the personal fields' ciphertext (or None).
    format: int = 1
    sealed: str | None = None


FORMAT_SEALED = 2


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_data(data: Any) -> str:
    """Key-sorted compact JSON: what jsonb gives back hashes to the same bytes."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def canonical(entry: Entry) -> bytes:
    """The canonical JSON of an entry; `data_json` must already be canonical.

    Format 1 is byte for byte what it always was; format 2 adds `format` and `sealed`
    (the ciphertext as stored), so the hash never depends on a key that may be destroyed.
    """
    fields: dict[str, Any] = {
        "chain_id": entry.chain_id,
        "chain_seq": entry.chain_seq,
        "event_id": entry.event_id,
        "type": entry.type,
        "source": entry.source,
        "subject": entry.subject,
        "user_id": entry.user_id,
        "task_id": entry.task_id,
        "occurred_at": _ts(entry.occurred_at),
        "recorded_at": _ts(entry.recorded_at),
        "trace_id": entry.trace_id,
        "snapshot": entry.snapshot,
        "source_offset": entry.source_offset,
    }
    if entry.format != 1:
        fields["format"] = entry.format
        fields["sealed"] = entry.sealed
    head = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    # Splice the already-canonical data in rather than re-serialising it per entry.
    return head[:-1] + b',"data":' + entry.data_json.encode() + b"}"


def entry_hash(prev_hash: str, entry: Entry) -> str:
    """sha256(prev_hash + "\\n" + canonical JSON), hex."""
    digest = hashlib.sha256(prev_hash.encode())
    digest.update(b"\n")
    digest.update(canonical(entry))
    return digest.hexdigest()
