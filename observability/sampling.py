"""Which spans are recorded: parent-based ratio sampling (OTEL_TRACES_SAMPLER_ARG) that
never starts a trace at a client span and skips transaction-bracket statements."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
    _get_from_env_or_default,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

log = logging.getLogger(__name__)


class RootFilter(Sampler):
    """Root sampler that never starts a trace at a client span.

    A database query or HTTP call with no traced operation around it (the relay's
    polling, a readiness probe's `SELECT 1`, LISTEN) would otherwise be a one-span trace:
    noise in Tempo and pure cost. Everything else goes to the ratio sampler.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"RootFilter{{{self._delegate.get_description()}}}"


# Transaction bracket statements: two spans per transaction that say nothing the
# statements between them do not (their time shows in the parent's duration).
UNTRACED_STATEMENTS = frozenset({"BEGIN", "BEGIN;", "COMMIT", "COMMIT;"})


class StatementFilter(Sampler):
    """Drop BEGIN/COMMIT client spans, then defer to `delegate` (cost: see the bench).

    `follows_parent` is set by `sampler_from_env` for the shipped composition only.
    """

    def __init__(self, delegate: Sampler, *, follows_parent: bool = False) -> None:
        self._delegate = delegate
        self.follows_parent = follows_parent

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT and name in UNTRACED_STATEMENTS:
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"StatementFilter{{{self._delegate.get_description()}}}"


# The shipped ratio: one trace in ten starts sampled; every later hop follows the parent's
# decision, so a sampled trace stays whole. Measured with tests/bench/tracing_cost.py
# (docs/performance.md): recording every request costs a quarter of the creates/s.
DEFAULT_RATIO = 0.1


def sampler_from_env() -> Sampler:
    """Parent-based ratio sampling (OTEL_TRACES_SAMPLER_ARG, default DEFAULT_RATIO) unless
    OTEL_TRACES_SAMPLER names another sampler."""
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return _get_from_env_or_default()
    raw = os.environ.get("OTEL_TRACES_SAMPLER_ARG", str(DEFAULT_RATIO))
    try:
        ratio = min(max(float(raw), 0.0), 1.0)
    except ValueError:
        log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a number; using %s", raw, DEFAULT_RATIO)
        ratio = DEFAULT_RATIO
    return StatementFilter(
        ParentBased(root=RootFilter(TraceIdRatioBased(ratio))), follows_parent=True
    )


def follows_parent(sampler: Sampler) -> bool:
    """True for the shipped sampler: a span whose parent is not sampled is never sampled,
    nor is a client span without a parent. Instrumentation may then skip building such a
    span (it would be dropped anyway) and the sampled traces stay whole. False for any
    sampler OTEL_TRACES_SAMPLER names: those decide for themselves."""
    return isinstance(sampler, StatementFilter) and sampler.follows_parent
