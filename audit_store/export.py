"""Streamed export as JSON Lines or CSV (one row per entry, `data` as JSON text)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson

Format = Literal["jsonl", "csv"]
CSV_COLUMNS = (
    "event_id",
    "type",
    "source",
    "subject",
    "user_id",
    "task_id",
    "occurred_at",
    "recorded_at",
    "data",
    "trace_id",
    "snapshot",
    "chain_id",
    "chain_seq",
    "hash",
    "prev_hash",
    "erased",
)
CONTENT_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv; charset=utf-8"}


async def jsonl(entries: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for entry in entries:
        yield orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)


async def as_csv(entries: AsyncIterator[dict[str, Any]], chunk: int = 500) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    async for entry in entries:
        row = dict(entry)
        row["data"] = orjson.dumps(row["data"]).decode() if row["data"] is not None else ""
        row["snapshot"] = "true" if row["snapshot"] else "false"
        row["erased"] = "true" if row.get("erased") else "false"
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
        count += 1
        if count % chunk == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def render(fmt: Format, entries: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    return jsonl(entries) if fmt == "jsonl" else as_csv(entries)
