"""The process-wide TracerProvider, configured from the standard OTEL_* variables.

`setup_tracing` is idempotent: every call returns a provider sharing one span-processor
pipeline, so tests may call it repeatedly (and attach an in-memory exporter) and several
services started in one test process each keep their own `service.name`.
"""

from __future__ import annotations

import os
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from observability.sampling import follows_parent, sampler_from_env

_lock = threading.Lock()
_pipeline = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
_providers: dict[str, TracerProvider] = {}
_attached: set[int] = set()
_env_exporter_done = False
_skip_unsampled = False  # see skip_unsampled_children()


def _stable_semconv() -> None:
    """Opt the instrumentations into the stable HTTP and database semantic conventions.

    They read this variable once, when the first instrumentation is built, so it must be
    set before `instrument_app`/`instrument_asyncpg`; an operator's own value wins.
    """
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")


def _protocol() -> str:
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()


def exporter_from_env() -> SpanExporter | None:
    """The exporter OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_* ask for, or None.

    No endpoint configured means no export (spans and trace ids still exist, so logs and
    propagation keep working); the OTLP exporters read endpoint, headers, timeout,
    compression and certificates from the environment themselves.
    """
    names = [
        n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()
    ]
    if "console" in names:
        return ConsoleSpanExporter()
    if "otlp" not in names:
        return None
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None
    if _protocol() == "grpc":
        # Imported lazily: grpc is heavy and most processes export over HTTP.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    # The official exporter with our protobuf writer (observability.otlp): a third of
    # the encoding CPU, in a thread that shares the GIL with the requests.
    from observability.otlp import HttpSpanExporter

    return HttpSpanExporter()


def setup_tracing(service_name: str, *, exporter: SpanExporter | None = None) -> TracerProvider:
    """Return the TracerProvider for `service_name`, creating the process pipeline once.

    The first provider created becomes the global one (`trace.get_tracer`). The exporter
    configured by the environment is attached once, behind a batch span processor. An
    `exporter` passed here (tests: `InMemorySpanExporter`) is attached once, behind a
    simple processor, so spans are visible the moment they end.
    """
    global _env_exporter_done, _skip_unsampled
    _stable_semconv()
    with _lock:
        provider = _providers.get(service_name)
        if provider is None:
            first = not _providers
            provider = TracerProvider(
                sampler=sampler_from_env(),
                resource=Resource.create({SERVICE_NAME: service_name}),
                active_span_processor=_pipeline,
                shutdown_on_exit=first,
            )
            _providers[service_name] = provider
            _skip_unsampled = all(follows_parent(p.sampler) for p in _providers.values())
            if first:
                trace.set_tracer_provider(provider)
        if not _env_exporter_done:
            _env_exporter_done = True
            env_exporter = exporter_from_env()
            if env_exporter is not None:
                _pipeline.add_span_processor(BatchSpanProcessor(env_exporter))
        if exporter is not None and id(exporter) not in _attached:
            _attached.add(id(exporter))
            _pipeline.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def provider_for(service_name: str) -> TracerProvider:
    """The provider of `service_name` (set up on first use)."""
    return _providers.get(service_name) or setup_tracing(service_name)


def get_tracer(name: str, service_name: str | None = None) -> trace.Tracer:
    """A tracer for instrumentation scope `name`, bound to one service's provider if given."""
    if service_name is None:
        return trace.get_tracer(name)
    return provider_for(service_name).get_tracer(name)


def skip_unsampled_children() -> bool:
    """Whether a span under an unsampled parent (or a client span with no parent) may be
    skipped: true when every provider runs the shipped parent-based sampler, which would
    drop it anyway. The parent's context stays current, so the next process still sees the
    'not sampled' flag and a sampled trace is never cut."""
    return _skip_unsampled


def force_flush(timeout_millis: int = 5000) -> bool:
    """Export every ended span now (call before a process exits or in tests)."""
    return _pipeline.force_flush(timeout_millis)
