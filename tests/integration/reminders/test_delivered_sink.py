"""The reminder flow's Kafka sink returns from a batch only once the broker has every
message: through an outage longer than `message.timeout.ms` it re-sends, never drops.

Found by the chaos suite: Bytewax's own KafkaSink dropped every reminder that fired while
the broker was frozen (SIGSTOP) for 30 s, and the flow committed the epoch anyway."""

from __future__ import annotations

import threading
import uuid

import pytest
from bytewax.connectors.kafka import KafkaSinkMessage

from deploy.broker import LocalBroker, ensure_topics
from events.kafka import KafkaSettings
from pipelines.kafka_sink import DeliveredKafkaSink
from tests.integration.reminders.harness import read_distinct

pytestmark = pytest.mark.integration


def test_a_batch_written_while_the_broker_is_frozen_arrives_after_it_thaws(
    own_broker: LocalBroker,
) -> None:
    kafka = KafkaSettings(bootstrap=own_broker.bootstrap, partitions=1)
    topic = f"sink-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [topic])
    config = kafka.producer(**{"linger.ms": 0, "message.timeout.ms": 1500})
    part = DeliveredKafkaSink(config, max_backoff=0.5).build("out", 0, 1)
    part.write_batch([KafkaSinkMessage(b"k", b"before", topic=topic)])

    own_broker.freeze()
    batch = [KafkaSinkMessage(b"k", f"during-{i}".encode(), topic=topic) for i in range(3)]
    writer = threading.Thread(target=part.write_batch, args=(batch,))
    writer.start()
    # The write outlives message.timeout.ms: it must still be waiting, not done.
    writer.join(3.0)
    assert writer.is_alive(), "write_batch returned while the broker was unreachable"
    own_broker.thaw()
    writer.join(60)
    assert not writer.is_alive()
    part.close()

    values = read_distinct(own_broker.bootstrap, topic, expected=4)
    assert values[0] == b"before"
    assert sorted(set(values[1:])) == [b"during-0", b"during-1", b"during-2"]
