"""Database client spans for asyncpg (and so for Tortoise, which runs on asyncpg)."""

from __future__ import annotations

import threading

from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

from observability.tracing import _stable_semconv, provider_for

_lock = threading.Lock()


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
