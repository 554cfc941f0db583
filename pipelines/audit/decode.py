"""Kafka message -> audit record (or poison), optionally inside a CONSUMER span.

The decision itself is `audit_store.records.to_record`; this only reads the message.
"""

from __future__ import annotations

import logging

from bytewax.connectors.kafka import KafkaSourceMessage
from opentelemetry import trace

from audit_store.records import AuditRecord, Origin, Poison, to_record
from observability.messaging import consumer_span, event_attributes

Message = KafkaSourceMessage[bytes | None, bytes | None]
Item = AuditRecord | Poison

# The flow keeps its offsets in Bytewax recovery, not in a Kafka group; this names it in
# span attributes and in the lag metric's `group` label.
GROUP = "taskflow-audit-flow"
_tracer = trace.get_tracer("pipelines.audit")
log = logging.getLogger(__name__)


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
            if log.isEnabledFor(logging.DEBUG):  # one line per event: off unless asked for
                log.debug("audit read %s %s", item.type, item.event_id)
        else:
            span.set_attribute("error.type", "poison")
        return item
