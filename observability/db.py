"""Database client spans for asyncpg (and so for Tortoise, which runs on asyncpg)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import asyncpg
import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

from observability.sampling import UNTRACED_STATEMENTS
from observability.tracing import _stable_semconv, provider_for, skip_unsampled_children

_lock = threading.Lock()

_PATCHED_CLASSES = (
    asyncpg.connection.Connection,
    asyncpg.cursor.Cursor,
    asyncpg.cursor.CursorIterator,
    asyncpg.prepared_stmt.PreparedStatement,
)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def _bracket(instance: Any, args: tuple[Any, ...]) -> bool:
    """Whether a connection's call runs BEGIN or COMMIT (what asyncpg's transactions send),
    whose span the shipped sampler drops by name (`sampling.UNTRACED_STATEMENTS`)."""
    query = args[0] if args else None
    if not isinstance(query, str) or query[:1] not in ("B", "C"):
        return False
    return query.split(None, 1)[0] in UNTRACED_STATEMENTS and isinstance(
        instance, asyncpg.connection.Connection
    )


def _only_when_sampled(traced: Wrapper) -> Wrapper:
    """Call the statement bare when its span would be dropped anyway (see
    `skip_unsampled_children`): the instrumentation's attribute parsing, span and context
    switch cost ~2 % of a create at 1-in-10 sampling. A sampled request's BEGIN and COMMIT
    skip them too: the instrumentation built both spans for the sampler to drop."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if skip_unsampled_children() and (
            not trace.get_current_span().get_span_context().trace_flags.sampled
            or _bracket(instance, args)
        ):
            return wrapped(*args, **kwargs)
        return traced(wrapped, instance, args, kwargs)

    return wrapper


def _guard_patches(instrumentor: AsyncPGInstrumentor) -> None:
    """Put the sampled check in front of each wrapper the instrumentor installed."""
    for owner in _PATCHED_CLASSES:
        for name, patched in list(vars(owner).items()):
            if not isinstance(patched, wrapt.FunctionWrapper):
                continue
            traced = cast(Wrapper, patched._self_wrapper)
            if getattr(traced, "__self__", None) is instrumentor:
                guarded = wrapt.FunctionWrapper(patched.__wrapped__, _only_when_sampled(traced))
                setattr(owner, name, guarded)


def instrument_asyncpg(service_name: str | None = None) -> None:
    """Patch asyncpg once per process; later calls do nothing.

    The patch is process-wide, so the spans belong to the provider of the first caller's
    `service_name` (the global provider when omitted). Query parameters are not recorded.
    """
    _stable_semconv()
    with _lock:
        instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
        if instrumentor.is_instrumented_by_opentelemetry:
            return
        if service_name is None:
            instrumentor.instrument()
        else:
            instrumentor.instrument(tracer_provider=provider_for(service_name))
        _guard_patches(instrumentor)
