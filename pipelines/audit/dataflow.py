"""The audit dataflow: every TaskFlow topic -> decode -> hash-chained audit store.

`build_flow(source, sink)` is the factory tests call with TestingSource/TestingSink;
`flow_from_settings()` builds the production flow from `TASKFLOW_AUDIT_*`/`TASKFLOW_KAFKA_*`
settings without connecting to anything (the sink connects when Bytewax builds it).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from audit_store.ports import utc_now
from audit_store.settings import AuditSettings
from events.kafka import KafkaSettings
from pipelines.audit.decode import Message, to_item, to_item_traced
from pipelines.audit.lag import expose_consumer_lag
from pipelines.audit.sink import AuditStoreSink, PooledWriter
from pipelines.paced_source import PacedKafkaSource
from runtime.flow import FlowProcess

SERVICE_NAME = "taskflow-audit-flow"


def build_flow(source: Source[Message], sink: Sink[Message], name: str = "audit") -> Dataflow:
    """Kafka messages -> the store sink, which decodes (`to_item`) and writes them.

    Decoding lives in the sink so it can overlap with the previous chunk's insert; the
    logic itself is the plain function `to_item` (and `audit_store.records`).
    """
    flow = Dataflow(name)
    messages = op.input("kafka_in", flow, source)
    op.output("audit_store", messages, sink)
    return flow


def flow_from_settings(
    audit: AuditSettings | None = None, kafka: KafkaSettings | None = None
) -> Dataflow:
    """The production flow: KafkaSource on every topic, the store sink, the real DLQ."""
    from audit_store.dead_letters import KafkaDeadLetters

    audit = audit or AuditSettings()
    kafka = kafka or KafkaSettings()
    topics = kafka.topics
    config: dict[str, Any] = kafka.common() | {
        "fetch.wait.max.ms": kafka.fetch_wait_ms(audit.flow_fetch_wait_ms),
        # A resume offset past the log end (a local broker that lost its log) restarts
        # from the beginning, never from the end: the store skips what it already has.
        "auto.offset.reset": "earliest",
        "queued.max.messages.kbytes": str(audit.flow_prefetch_kib),
    }
    source: Source[Message] = PacedKafkaSource(  # type: ignore[assignment]
        audit.flow_poll_interval,
        [kafka.bootstrap],
        [topics.tasks, topics.reminders, topics.notifications],
        tail=audit.flow_tail,
        add_config=config,
        batch_size=audit.flow_batch_size,
        idle_wait=audit.flow_idle_wait,
        idle_check=kafka.quiet_check(audit.flow_idle_check),
    )

    keyring = audit.keyring()  # one per process: workers share its unwrapped-key cache

    def open_writer() -> Coroutine[Any, Any, PooledWriter]:
        dead_letters = KafkaDeadLetters(kafka.producer(), topics.dlq)
        return PooledWriter.open(audit.database_url, dead_letters, utc_now, keyring)

    decode = to_item_traced if audit.flow_message_spans else to_item
    return build_flow(source, AuditStoreSink(open_writer, decode), audit.flow_name)


def flow_process(audit: AuditSettings) -> FlowProcess:
    """What `runtime.flow` sets up for this process: logs, traces, the metrics port with
    Bytewax's consumer lag relabelled as `taskflow_consumer_lag_messages`."""
    return FlowProcess(
        SERVICE_NAME,
        metrics_port=audit.flow_metrics_port,
        metrics_host=audit.flow_metrics_host,
        max_silence=audit.flow_max_silence,
        add_metrics=expose_consumer_lag,
    )
