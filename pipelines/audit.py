"""The audit dataflow: every TaskFlow topic -> decode -> hash-chained audit store.

Run it with recovery (see docs/audit.md):
    python -m bytewax.recovery DIR 1
    python -m bytewax.run pipelines.audit:flow -r DIR -s 1 -b 0 -w 2

`build_flow(source, sink)` is the factory tests call with TestingSource/TestingSink;
the module-level `flow` is built from `TASKFLOW_AUDIT_*`/`TASKFLOW_KAFKA_*` settings on
first access, so importing this module connects to nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from bytewax import operators as op
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from opentelemetry import trace
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from audit_store.ports import utc_now
from audit_store.records import AuditRecord, Origin, Poison, to_record
from audit_store.settings import AuditSettings
from events.kafka import KafkaSettings
from observability.logs import setup_logging
from observability.messaging import consumer_span, event_attributes
from observability.tracing import setup_tracing

Message = KafkaSourceMessage[bytes | None, bytes | None]
Item = AuditRecord | Poison

if TYPE_CHECKING:
    from pipelines.audit_sink import PooledWriter

SERVICE_NAME = "taskflow-audit-flow"
# The flow keeps its offsets in Bytewax recovery, not in a Kafka group; this names it in
# span attributes and in the lag metric's `group` label.
GROUP = "taskflow-audit-flow"
_tracer = trace.get_tracer("pipelines.audit")


def origin_of(msg: Message) -> Origin:
    ts = msg.timestamp[1] if msg.timestamp and msg.timestamp[0] else None
    return Origin(msg.topic or "", msg.partition or 0, msg.offset or 0, ts)


def to_item(msg: Message) -> Item:
    """Decode one message; poison is kept as data for the sink to dead-letter."""
    return to_record(origin_of(msg), msg.key, msg.value, msg.headers)


def to_item_traced(msg: Message) -> Item:
    """`to_item` inside a CONSUMER span whose parent is the producer's (from the headers)."""
    origin = origin_of(msg)
    with consumer_span(
        origin.topic,
        headers=msg.headers,
        partition=origin.partition,
        offset=origin.offset,
        group=GROUP,
        tracer=_tracer,
    ) as span:
        item = to_record(origin, msg.key, msg.value, msg.headers)
        if isinstance(item, AuditRecord):
            span.set_attributes(event_attributes(event_id=item.event_id, event_type=item.type))
        else:
            span.set_attribute("error.type", "poison")
        return item


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
    from bytewax.connectors.kafka import KafkaSource

    from audit_store.dead_letters import KafkaDeadLetters
    from pipelines.audit_sink import AuditStoreSink, PooledWriter

    audit = audit or AuditSettings()
    kafka = kafka or KafkaSettings()
    _setup_observability(audit)
    topics = kafka.topics
    config: dict[str, Any] = kafka.common() | {
        "fetch.wait.max.ms": kafka.fetch_wait_ms(audit.flow_fetch_wait_ms),
        # A resume offset past the log end (a local broker that lost its log) restarts
        # from the beginning, never from the end: the store skips what it already has.
        "auto.offset.reset": "earliest",
    }
    source: Source[Message] = KafkaSource(  # type: ignore[assignment]
        [kafka.bootstrap],
        [topics.tasks, topics.reminders, topics.notifications],
        tail=audit.flow_tail,
        add_config=config,
        batch_size=audit.flow_batch_size,
    )

    def open_writer() -> Coroutine[Any, Any, PooledWriter]:
        dead_letters = KafkaDeadLetters(kafka.producer(), topics.dlq)
        return PooledWriter.open(audit.database_url, dead_letters, utc_now)

    decode = to_item_traced if audit.flow_message_spans else to_item
    return build_flow(source, AuditStoreSink(open_writer, decode), audit.flow_name)


_metrics_lock = threading.Lock()
_metrics_started = False


def _setup_observability(audit: AuditSettings) -> None:
    global _metrics_started
    setup_logging(SERVICE_NAME)
    setup_tracing(SERVICE_NAME)
    with _metrics_lock:
        if audit.flow_metrics_port and not _metrics_started:
            from prometheus_client import start_http_server

            expose_consumer_lag(REGISTRY)
            start_http_server(audit.flow_metrics_port, addr=audit.flow_metrics_host)
            _metrics_started = True


LAG_NAME = "taskflow_consumer_lag_messages"


class ConsumerLagCollector(Collector):
    """Bytewax's per-partition lag, re-exposed as `taskflow_consumer_lag_messages`.

    Bytewax's Kafka source sets its own gauge `bytewax_kafka_consumer_lag` from librdkafka's
    statistics (once a second, no extra broker calls) and installs that callback itself,
    so the figure cannot be fed into `observability.metrics.ConsumerLagMetrics` (a push
    gauge); it is relabelled at scrape time instead. Same name, labels and meaning.
    """

    def __init__(self, source: Collector, group: str = GROUP) -> None:
        self._source, self._group = source, group

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            LAG_NAME,
            "Messages not yet consumed: high watermark minus committed (or processed) offset.",
            labels=("group", "topic", "partition"),
        )
        for metric in self._source.collect():
            for sample in metric.samples:
                labels = sample.labels
                lag.add_metric(
                    [self._group, labels.get("topic", ""), labels.get("partition", "")],
                    sample.value,
                )
        yield lag


def expose_consumer_lag(registry: CollectorRegistry) -> None:
    """Swap Bytewax's lag gauge in `registry` for `taskflow_consumer_lag_messages`."""
    from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE

    with contextlib.suppress(KeyError):  # already swapped (or never registered there)
        registry.unregister(BYTEWAX_CONSUMER_LAG_GAUGE)
    registry.register(ConsumerLagCollector(BYTEWAX_CONSUMER_LAG_GAUGE))


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run pipelines.audit:flow` looks `flow` up; build it only then.
    if name == "flow":
        built = flow_from_settings()
        globals()["flow"] = built
        return built
    raise AttributeError(name)
