"""The audit dataflow: every TaskFlow topic -> decode -> hash-chained audit store.

Run it with recovery (see docs/audit.md):
    python -m bytewax.recovery DIR 1
    python -m bytewax.run pipelines.audit:flow -r DIR -s 1 -b 0 -w 2

Parts: `dataflow` (the factory and the production flow), `decode` (message -> record),
`sink` (the two-stage store writer), `lag` (the consumer-lag metric). The package's `flow`
is built from settings on first access (after `runtime.flow` has wired the process:
logs, traces, metrics, SIGTERM), so importing it starts and connects to nothing.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from pipelines.audit.dataflow import SERVICE_NAME, build_flow, flow_from_settings
from pipelines.audit.decode import GROUP, Item, Message, origin_of, to_item, to_item_traced
from pipelines.audit.lag import LAG_NAME, ConsumerLagCollector, expose_consumer_lag

__all__ = [
    "GROUP",
    "LAG_NAME",
    "SERVICE_NAME",
    "ConsumerLagCollector",
    "Item",
    "Message",
    "build_flow",
    "expose_consumer_lag",
    "flow_from_settings",
    "origin_of",
    "to_item",
    "to_item_traced",
]


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run pipelines.audit:flow` looks `flow` up; build it only then.
    if name == "flow":
        from audit_store.settings import AuditSettings
        from pipelines.audit.dataflow import flow_process
        from runtime.flow import start_flow_process

        settings = AuditSettings()
        start_flow_process(flow_process(settings))
        built = flow_from_settings(settings)
        globals()["flow"] = built
        return built
    raise AttributeError(name)
