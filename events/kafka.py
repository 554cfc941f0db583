"""Kafka client settings: bootstrap, TLS and SASL passed through to librdkafka.

Defaults are safe for Tansu (the local broker): see `tech-notes.md` on group joins and
fetch latency. Every option also works against Apache Kafka.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.topics import Topics


class KafkaSettings(BaseSettings):
    """`TASKFLOW_KAFKA_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="TASKFLOW_KAFKA_", extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_endpoint_identification_algorithm: str | None = None
    # Any other librdkafka property, as JSON: {"socket.keepalive.enable": "true"}; it wins
    # over the producer/consumer defaults below (but not over a caller's overrides).
    extra: dict[str, str] = {}
    topic_namespace: str = ""
    partitions: int = 6
    replication_factor: int = 1

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_namespace)

    def common(self) -> dict[str, Any]:
        """Connection and security properties shared by producers, consumers and admin."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            ),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.endpoint.identification.algorithm": self.ssl_endpoint_identification_algorithm,
        }
        conf.update({key: value for key, value in optional.items() if value is not None})
        return conf

    def producer(self, **overrides: Any) -> dict[str, Any]:
        """An idempotent, acks=all producer: no loss, no duplicates from retries."""
        conf = self.common() | {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 15000,
            "compression.type": "none",
            # Reconnect within a second of a broker coming back (default backs off to 10 s).
            "reconnect.backoff.max.ms": 1000,
        }
        return conf | self.extra | overrides

    def consumer(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """A manual-commit consumer with Tansu-safe group timings and low fetch wait."""
        conf = self.common() | {
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 20,
        }
        return conf | self.extra | overrides

    def admin(self) -> dict[str, Any]:
        return self.common()

    def with_extra(self, **properties: str) -> KafkaSettings:
        """A copy with more librdkafka properties (they win over the defaults above)."""
        return self.model_copy(update={"extra": self.extra | properties})
