"""Audit search: filters from api.md, keyset paging on insert order, per-user isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from audit_store.crypto import Keyring, unseal
from audit_store.exceptions import Forbidden
from audit_store.personal import has_personal, mask, merge
from webapi.auth import Principal
from webapi.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from webapi.problems import ValidationProblem, field_errors

ENTRY_COLUMNS = """entry_id, event_id, type, source, subject, user_id, task_id, occurred_at,
    recorded_at, data::text AS data, trace_id, snapshot, chain_id, chain_seq, hash, prev_hash,
    format, sealed, erased_at, k.wrapped_key, k.kek_id, k.shredded_at"""
# Each entry with its user's data key (if any): the key is read in the same statement as
# the entries, so an entry is never shown decrypted after its key was shredded.
ENTRIES_WITH_KEYS = """audit_entries LEFT JOIN LATERAL (
    SELECT wrapped_key, kek_id, shredded_at FROM audit_user_keys
    WHERE audit_user_keys.user_id = audit_entries.user_id) k ON true"""


class AuditQuery(BaseModel):
    """Query-string filters of `GET /api/v1/audit` (and export)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=True)

    task_id: str | None = Field(None, min_length=1, max_length=200)
    user_id: str | None = Field(None, min_length=1, max_length=200)
    type: str | None = Field(None, min_length=1, max_length=200)
    from_: AwareDatetime | None = Field(None, alias="from")
    to: AwareDatetime | None = None
    q: str | None = Field(None, min_length=1, max_length=500)
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> AuditQuery:
        try:
            return cls.model_validate(dict(args))
        except ValidationError as exc:
            raise ValidationProblem("invalid query parameters", field_errors(exc)) from None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def where_clause(query: AuditQuery, principal: Principal) -> tuple[str, list[Any]]:
    """SQL conditions and arguments; a non-operator is confined to their own entries."""
    conds, args = ["purged_at IS NULL"], []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if principal.is_operator:
        if query.user_id is not None:
            conds.append(f"user_id = {arg(query.user_id)}")
    else:
        if query.user_id is not None and query.user_id != principal.user_id:
            raise Forbidden("the user_id filter is for operators")
        conds.append(f"user_id = {arg(principal.user_id)}")
    if query.task_id is not None:
        conds.append(f"task_id = {arg(query.task_id)}")
    if query.type is not None:
        if query.type.endswith("."):
            conds.append(f"starts_with(type, {arg(query.type)})")
        else:
            conds.append(f"type = {arg(query.type)}")
    if query.from_ is not None:
        conds.append(f"occurred_at >= {arg(query.from_)}")
    if query.to is not None:
        conds.append(f"occurred_at < {arg(query.to)}")
    if query.q is not None:
        conds.append(f"search @@ websearch_to_tsquery('english', {arg(query.q)})")
    return " AND ".join(conds), args


def entry_json(row: Mapping[str, Any], keyring: Keyring | None = None) -> dict[str, Any]:
    """The api.md entry, plus `task_id`, `snapshot`, the chain position and `erased`.

    Personal fields are decrypted with the user's data key; once it is shredded they read
    `"[erased]"` and `erased` is true.
    """
    data, erased = _data(row, keyring)
    return {
        "event_id": row["event_id"],
        "type": row["type"],
        "source": row["source"],
        "subject": row["subject"],
        "user_id": row["user_id"],
        "task_id": row["task_id"],
        "occurred_at": _iso(row["occurred_at"]),
        "recorded_at": _iso(row["recorded_at"]),
        "data": data,
        "trace_id": row["trace_id"],
        "snapshot": row["snapshot"],
        "chain_id": row["chain_id"],
        "chain_seq": row["chain_seq"],
        "hash": row["hash"],
        "prev_hash": row["prev_hash"],
        "erased": erased,
    }


def _data(row: Mapping[str, Any], keyring: Keyring | None) -> tuple[Any, bool]:
    """(data as shown, erased?): decrypted for a live user, masked for an erased one."""
    raw: str | None = row["data"]
    erased = row.get("shredded_at") is not None or row.get("erased_at") is not None
    if raw is None:
        return None, erased
    if row.get("format", 1) == 1 and row.get("erased_at") is None:
        # A plaintext entry (from before crypto-shredding): the exact JSON that was hashed.
        return orjson.Fragment(raw), erased
    event_type = row["type"]
    if not has_personal(event_type):
        return orjson.Fragment(raw), erased
    clear = orjson.loads(raw)
    sealed, wrapped = row.get("sealed"), row.get("wrapped_key")
    if sealed is None or wrapped is None or keyring is None:
        return mask(event_type, clear), erased
    user = row["user_id"]
    aead = keyring.unwrap(user, bytes(wrapped), row["kek_id"])
    personal = orjson.loads(unseal(aead, row["event_id"], user, sealed))
    return merge(clear, personal), erased


def _iso(value: datetime) -> str:
    return value.isoformat()


async def search(
    pool: asyncpg.Pool, query: AuditQuery, principal: Principal, keyring: Keyring | None = None
) -> Page:
    """One page, newest first; the cursor is the last entry's position."""
    where, args = where_clause(query, principal)
    if query.cursor is not None:
        (after,) = decode_cursor(query.cursor, 1)
        if not isinstance(after, int):
            raise ValidationProblem("invalid cursor", [{"field": "cursor", "message": "invalid"}])
        args.append(after)
        where += f" AND entry_id < ${len(args)}"
    args.append(query.limit + 1)
    rows = await pool.fetch(
        f"SELECT {ENTRY_COLUMNS} FROM {ENTRIES_WITH_KEYS} WHERE {where} "  # noqa: S608 - built from fixed fragments
        f"ORDER BY entry_id DESC LIMIT ${len(args)}",
        *args,
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    cursor = encode_cursor(rows[-1]["entry_id"]) if more and rows else None
    return Page([entry_json(r, keyring) for r in rows], cursor)


async def stream_entries(
    pool: asyncpg.Pool,
    query: AuditQuery,
    principal: Principal,
    keyring: Keyring | None = None,
    page: int = 2000,
) -> AsyncIterator[dict[str, Any]]:
    """Every matching entry, oldest first, fetched in keyset pages (no long transaction)."""
    where, args = where_clause(query, principal)
    after = 0
    n = len(args)
    sql = (
        f"SELECT {ENTRY_COLUMNS} FROM {ENTRIES_WITH_KEYS} WHERE {where} "  # noqa: S608
        f"AND entry_id > ${n + 1} ORDER BY entry_id LIMIT ${n + 2}"
    )
    while True:
        rows = await pool.fetch(sql, *args, after, page)
        for row in rows:
            yield entry_json(row, keyring)
        if len(rows) < page:
            return
        after = rows[-1]["entry_id"]
