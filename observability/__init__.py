"""Observability for every TaskFlow process: traces, Kafka propagation, JSON logs, metrics.

Public entry points (import the submodules, nothing connects at import time):

- `observability.tracing.setup_tracing(service_name)`: the process-wide TracerProvider
  (sampling rules in `observability.sampling`).
- `observability.propagation`: W3C trace context through Kafka headers and dataflow items.
- `observability.messaging`: producer/consumer spans with messaging + CloudEvents attributes.
- `observability.logs.setup_logging(service_name)`: JSON lines carrying trace and span ids.
- `observability.metrics`: Prometheus metric families with one naming scheme.
- `observability.quart.instrument_app(app, service_name, registry)`: server spans + HTTP metrics.
- `observability.db.instrument_asyncpg()`: database client spans.
"""
