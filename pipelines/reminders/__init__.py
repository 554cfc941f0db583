"""The reminder dataflow: per-task timers on `taskflow.tasks`, per-user digests, read model.

Run with recovery (see docs/reminders.md):
    python -m bytewax.recovery DIR 1
    python -m bytewax.run pipelines.reminders:flow -r DIR -s 1 -b 0

Parts: `dataflow` (the graph), `source` (paced Kafka input), `codec` (messages in and
out, dead letters), `logic` and `shards` (the stateful steps: thin adapters over
`reminders.domain`), `snapshot` (compact timer state), `trace` (the fire span), `store`
(the read-model sink, through `reminders.ports`), `sent` (the Kafka sink that records each
reminder before producing it, and the index a replay resends from). The package's `flow`
is built from settings on first access (after `runtime.flow` has wired the process: JSON
logs, traces, GC thresholds, metrics, SIGTERM), so importing it starts and connects to
nothing.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from pipelines.reminders.dataflow import build_flow, flow_from_env

__all__ = ["build_flow", "flow_from_env"]


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run pipelines.reminders:flow` looks `flow` up; build it only then.
    if name == "flow":
        from pipelines.reminders.dataflow import flow_process
        from reminders.settings import ReminderSettings
        from runtime.flow import start_flow_process

        settings = ReminderSettings()
        start_flow_process(flow_process(settings))
        built = flow_from_env(settings)
        globals()["flow"] = built
        return built
    raise AttributeError(name)
