"""Kafka over TLS: clients that trust the CA round-trip messages, others fail verification.

The broker side is Tansu behind a TLS terminator (tls_proxy.py explains why); the clients
are the real confluent-kafka/librdkafka ones, configured by hand and through KafkaSettings.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from deploy.broker import ensure_topics
from events.kafka import KafkaSettings
from events.producer import AsyncProducer
from tests.integration.security.pki import Pki
from tests.integration.security.tls_proxy import TlsTerminator
from tests.kafka_helpers import TopicReader, headers_of


def tls_settings(proxy: TlsTerminator, ca: Path | None, **fields: Any) -> KafkaSettings:
    return KafkaSettings(
        bootstrap=f"127.0.0.1:{proxy.port}",
        security_protocol="SSL",
        ssl_ca_location=str(ca) if ca else None,
        topic_namespace=f"tls{uuid.uuid4().hex[:8]}.",
        partitions=1,
        **fields,
    )


def connection_errors(conf: dict[str, Any], deadline_s: float = 15.0) -> list[str]:
    """Ask for metadata; return the errors librdkafka reported (empty if it connected)."""
    errors: list[str] = []

    def on_error(err: KafkaError) -> None:
        errors.append(str(err))

    admin = AdminClient(conf | {"error_cb": on_error})
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            admin.list_topics(timeout=1.0)
            return []
        except KafkaException:
            admin.poll(0.1)  # serves error_cb
            if any("certificate verify failed" in e for e in errors):
                return errors
    return errors or ["no metadata and no error before the deadline"]


@pytest.fixture
def topic(tls_broker: TlsTerminator, pki: Pki) -> Iterator[str]:
    settings = tls_settings(tls_broker, pki.ca)
    ensure_topics(settings, [settings.topics.tasks])  # the admin client over TLS
    yield settings.topics.tasks


def test_a_client_that_trusts_the_ca_round_trips_a_message(
    tls_broker: TlsTerminator, pki: Pki, topic: str
) -> None:
    handshakes_before = tls_broker.connections
    conf = {
        "bootstrap.servers": f"127.0.0.1:{tls_broker.port}",
        "security.protocol": "SSL",
        "ssl.ca.location": str(pki.ca),
        "ssl.endpoint.identification.algorithm": "https",
    }
    producer = Producer(conf)
    producer.produce(topic, b"over tls", b"k")
    assert producer.flush(15) == 0

    consumer = Consumer(conf | {"group.id": f"g-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        end = time.monotonic() + 15
        received = None
        while received is None and time.monotonic() < end:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                received = msg
        assert received is not None, "nothing arrived over TLS"
        assert (received.key(), received.value()) == (b"k", b"over tls")
    finally:
        consumer.close()
    assert tls_broker.connections >= handshakes_before + 2  # producer and consumer


async def test_kafka_settings_and_the_async_producer_work_over_tls(
    tls_broker: TlsTerminator, pki: Pki
) -> None:
    settings = tls_settings(tls_broker, pki.ca, ssl_endpoint_identification_algorithm="https")
    ensure_topics(settings, [settings.topics.tasks])
    producer = AsyncProducer(settings.producer())
    reader = TopicReader(settings, settings.topics.tasks)
    try:
        await producer.warm_up(settings.topics.tasks)
        delivered = await producer.produce(
            settings.topics.tasks, b"v", "k", [("traceparent", b"00-abc")]
        )
        assert delivered.error() is None
        (msg,) = await reader.wait_count(1)
        assert (msg.key(), msg.value()) == (b"k", b"v")
        assert headers_of(msg) == {"traceparent": "00-abc"}
    finally:
        reader.close()
        await producer.close()


@pytest.mark.parametrize("trusted", ["another CA", "the system store only"])
def test_a_client_that_does_not_trust_the_ca_fails_verification(
    tls_broker: TlsTerminator, pki: Pki, trusted: str
) -> None:
    ca = pki.other_ca if trusted == "another CA" else None
    errors = connection_errors(tls_settings(tls_broker, ca).admin())
    assert any("certificate verify failed" in e for e in errors), errors


def test_a_certificate_for_another_host_fails_hostname_verification(
    tls_broker: TlsTerminator, pki: Pki
) -> None:
    # Same CA, same broker, but the certificate names kafka.elsewhere.test.
    wrong = TlsTerminator(pki.wrong_host_cert, pki.wrong_host_key, tls_broker.upstream_port)
    wrong.start()
    try:
        conf = KafkaSettings(
            bootstrap=f"127.0.0.1:{wrong.port}",
            security_protocol="SSL",
            ssl_ca_location=str(pki.ca),
            ssl_endpoint_identification_algorithm="https",
        ).admin()
        errors = connection_errors(conf)
        assert any("certificate verify failed" in e for e in errors), errors
        # The chain is fine: only the host name check refused it.
        assert connection_errors(conf | {"ssl.endpoint.identification.algorithm": "none"}) == []
    finally:
        wrong.stop()


def test_a_plaintext_client_gets_nothing_from_the_tls_port(tls_broker: TlsTerminator) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{tls_broker.port}"})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
