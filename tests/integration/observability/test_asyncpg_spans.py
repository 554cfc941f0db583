"""asyncpg against the real PostgreSQL makes database client spans under the caller's span."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor, _hydrate_span_from_args
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode

from observability.db import instrument_asyncpg

pytestmark = pytest.mark.integration


async def test_queries_become_client_spans(
    spans: InMemorySpanExporter, create_database: Callable[[str], Awaitable[str]]
) -> None:
    url = await create_database("obs")
    instrument_asyncpg()
    instrument_asyncpg()  # idempotent: a second patch would double every span
    conn = await asyncpg.connect(url)
    try:
        with trace.get_tracer("t").start_as_current_span("request") as request:
            await conn.execute("CREATE TABLE t (id int primary key, secret text)")
            await conn.execute("INSERT INTO t VALUES ($1, $2)", 1, "do-not-record")
            assert await conn.fetchval("SELECT secret FROM t WHERE id = $1", 1)
    finally:
        await conn.close()
    db_spans = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(db_spans) == 3
    for span in db_spans:
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
        attrs = dict(span.attributes or {})
        assert attrs.get("db.system.name", attrs.get("db.system")) == "postgresql"
        assert "do-not-record" not in str(attrs)  # parameters are not captured
    insert = next(s for s in db_spans if "INSERT" in s.name)
    assert "INSERT INTO t" in str(dict(insert.attributes or {}).get("db.query.text", ""))


async def test_no_client_span_under_an_unsampled_parent(
    spans: InMemorySpanExporter, create_database: Callable[[str], Awaitable[str]]
) -> None:
    url = await create_database("obs_unsampled")
    instrument_asyncpg()
    unsampled = NonRecordingSpan(
        SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True)
    )
    conn = await asyncpg.connect(url)
    try:
        with trace.use_span(unsampled):
            assert await conn.fetchval("SELECT $1::int", 1) == 1
            statement = await conn.prepare("SELECT 2")
            assert await statement.fetchval() == 2
        with trace.get_tracer("t").start_as_current_span("request"):
            assert await conn.fetchval("SELECT 3") == 3
    finally:
        await conn.close()
    (client,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert client.name == "SELECT" and client.parent is not None


async def test_statement_spans_carry_what_the_instrumentation_would(
    spans: InMemorySpanExporter, create_database: Callable[[str], Awaitable[str]]
) -> None:
    """The lean Connection wrapper (`observability.db.statement_spans`) gives each span the
    attributes the OpenTelemetry instrumentation computes, names it by the statement's first
    word (after a leading comment) and marks a failed statement as an error."""
    url = await create_database("obs_lean")
    instrument_asyncpg()
    conn = await asyncpg.connect(url)
    query = "/* from the bench */ SELECT $1::int"
    try:
        with trace.get_tracer("t").start_as_current_span("request"):
            assert await conn.fetchval(query, 7) == 7
            with pytest.raises(asyncpg.UndefinedTableError):
                await conn.execute("DELETE FROM missing_table")
        mode = AsyncPGInstrumentor()._semconv_opt_in_mode  # type: ignore[no-untyped-call]
        expected = _hydrate_span_from_args(conn, query, None, mode)
    finally:
        await conn.close()
    select, delete = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert select.name == "SELECT"
    assert dict(select.attributes or {}) == expected
    assert select.status.status_code is StatusCode.UNSET
    assert delete.name == "DELETE"
    assert delete.status.status_code is StatusCode.ERROR
    assert (delete.attributes or {}).get("error.type") == "UndefinedTableError"
