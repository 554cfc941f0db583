"""observability.db calls a statement bare when the shipped sampler would drop its span."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest.mock import MagicMock

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from observability.db import _only_when_sampled
from observability.tracing import skip_unsampled_children


class Traced:
    """Stands in for the instrumentation's wrapper: records what it was asked to trace."""

    def __init__(self) -> None:
        self.queries: list[object] = []

    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        self.queries.append(args[0] if args else None)
        return wrapped(*args, **kwargs)


class Connection(asyncpg.connection.Connection):
    """A connection that never connects: only its class is looked at."""

    def __init__(self) -> None:
        pass

    def __del__(self) -> None:
        pass


def _parent(sampled: bool) -> NonRecordingSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return NonRecordingSpan(SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 7, True, flags))


def _statement(*args: object) -> str:
    return "ran"


@pytest.fixture
def traced() -> Traced:
    assert skip_unsampled_children()  # the unit tier runs the shipped sampler
    return Traced()


def test_transaction_brackets_of_a_sampled_request_skip_the_instrumentation(
    traced: Traced,
) -> None:
    connection = Connection()
    wrapper = _only_when_sampled(traced)
    with trace.use_span(_parent(sampled=True)):
        for query in ("BEGIN;", "BEGIN ISOLATION LEVEL SERIALIZABLE;", "COMMIT;", "COMMIT"):
            assert wrapper(_statement, connection, (query,), {}) == "ran"
        # Everything else is traced, ROLLBACK and lower-case brackets included (the
        # sampler keeps those).
        for query in ("INSERT INTO t VALUES ($1)", "ROLLBACK;", "begin;", "CREATE TABLE c ()"):
            wrapper(_statement, connection, (query,), {})
    assert traced.queries == [
        "INSERT INTO t VALUES ($1)",
        "ROLLBACK;",
        "begin;",
        "CREATE TABLE c ()",
    ]


def test_a_prepared_statements_argument_is_not_taken_for_a_query(traced: Traced) -> None:
    statement = MagicMock(spec_set=asyncpg.prepared_stmt.PreparedStatement)
    with trace.use_span(_parent(sampled=True)):
        _only_when_sampled(traced)(_statement, statement, ("BEGIN;",), {})
    assert traced.queries == ["BEGIN;"]


def test_nothing_under_an_unsampled_parent_is_traced(traced: Traced) -> None:
    connection = Connection()
    with trace.use_span(_parent(sampled=False)):
        _only_when_sampled(traced)(_statement, connection, ("SELECT 1",), {})
    assert traced.queries == []
