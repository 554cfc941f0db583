"""Search filters and isolation, and the export formats (no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from audit_store.exceptions import Forbidden
from audit_store.export import as_csv, jsonl
from audit_store.search import AuditQuery, entry_json, where_clause
from webapi.auth import Principal
from webapi.problems import ValidationProblem

ALICE = Principal("alice")
OPS = Principal("ops", frozenset({"operator"}))


def test_a_user_is_confined_to_their_own_entries() -> None:
    where, args = where_clause(AuditQuery.parse({}), ALICE)
    assert "user_id = $1" in where and args == ["alice"]
    where, args = where_clause(AuditQuery.parse({"user_id": "alice"}), ALICE)
    assert args == ["alice"]
    with pytest.raises(Forbidden):
        where_clause(AuditQuery.parse({"user_id": "bob"}), ALICE)


def test_an_operator_sees_all_unless_filtering() -> None:
    where, args = where_clause(AuditQuery.parse({}), OPS)
    assert where == "purged_at IS NULL" and args == []
    _, args = where_clause(AuditQuery.parse({"user_id": "bob"}), OPS)
    assert args == ["bob"]


def test_type_exact_or_prefix_and_time_range() -> None:
    query = AuditQuery.parse(
        {"type": "task.", "from": "2026-01-01T00:00:00+01:00", "to": "2026-01-02T00:00:00Z"}
    )
    where, args = where_clause(query, OPS)
    assert "starts_with(type, $1)" in where and "occurred_at >= $2" in where
    assert args[1] == datetime(2025, 12, 31, 23, tzinfo=UTC)
    where, _ = where_clause(AuditQuery.parse({"type": "task.created", "q": "milk"}), OPS)
    assert "type = $1" in where and "websearch_to_tsquery" in where


@pytest.mark.parametrize(
    ("args", "field"),
    [({"from": "2026-01-01T00:00:00"}, "from"), ({"limit": "500"}, "limit"), ({"q": ""}, "q")],
)
def test_bad_filters_are_422_naming_the_field(args: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationProblem) as caught:
        AuditQuery.parse(args)
    assert [e["field"] for e in caught.value.errors] == [field]


ROW = {
    "event_id": "e1", "type": "task.created", "source": "/s", "subject": "t1",
    "user_id": "alice", "task_id": "t1", "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
    "recorded_at": datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), "data": '{"title":"a, \\"b\\""}',
    "trace_id": None, "snapshot": False, "chain_id": "c/0", "chain_seq": 1, "hash": "h",
    "prev_hash": "p",
}  # fmt: skip


async def entries(n: int) -> AsyncIterator[dict[str, Any]]:
    for _ in range(n):
        yield entry_json(ROW)


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_jsonl_is_one_entry_per_line_with_data_as_an_object() -> None:
    lines = (await collect(jsonl(entries(3)))).splitlines()
    assert len(lines) == 3
    entry = orjson.loads(lines[0])
    assert entry["data"] == {"title": 'a, "b"'}
    assert entry["occurred_at"] == "2026-01-01T00:00:00+00:00"


async def test_csv_has_a_header_and_quotes_data() -> None:
    import csv
    import io

    text = (await collect(as_csv(entries(1200), chunk=500))).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1200
    assert orjson.loads(rows[0]["data"]) == {"title": 'a, "b"'}
    assert rows[0]["trace_id"] == "" and rows[0]["snapshot"] == "false"
