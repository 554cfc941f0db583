"""Kafka client settings: bootstrap, TLS and SASL (checked, then passed to librdkafka).

Defaults are safe for Tansu (the local broker): see `tech-notes.md` on group joins and
fetch latency. Every option also works against Apache Kafka.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.secrets import SecretFilesMixin
from events.topics import Topics

PREFIX = "TASKFLOW_KAFKA_"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ENDPOINT_CHECKS = ("https", "none")
# On a broker that answers a waiting fetch as soon as data arrives (Apache Kafka), a long
# wait costs neither latency nor CPU: consumers wait this long for the next message.
LONG_FETCH_WAIT_MS = 500
BrokerProfile = Literal["kafka", "tansu"]


class KafkaSettings(SecretFilesMixin, BaseSettings):
    """`TASKFLOW_KAFKA_*` environment variables (each also as `..._FILE`, see events.secrets).

    TLS: `security_protocol` SSL or SASL_SSL; the broker is verified against
    `ssl_ca_location` (a PEM bundle; the system store when unset) and its host name
    (`ssl_endpoint_identification_algorithm`, librdkafka's default `https`). SASL:
    SASL_PLAINTEXT or SASL_SSL with a mechanism, a user name and a password.
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    # A client certificate, for brokers that authenticate clients by TLS (mutual TLS).
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    ssl_endpoint_identification_algorithm: str | None = None
    # Any other librdkafka property, as JSON: {"socket.keepalive.enable": "true"}; it wins
    # over the producer/consumer defaults below (but not over a caller's overrides).
    extra: dict[str, str] = {}
    topic_namespace: str = ""
    partitions: int = 6
    # How the broker answers a waiting fetch (docs/performance.md). "kafka": as soon as data
    # arrives, so every consumer waits long (LONG_FETCH_WAIT_MS) at no cost. "tansu" (the
    # local broker): only when the wait runs out, so a consumer's wait is its latency and
    # each empty fetch costs the broker ~0.5 ms CPU; consumers then use their own budgets.
    profile: BrokerProfile = "tansu"
    replication_factor: int = 1

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        # librdkafka accepts either case; one spelling keeps the checks below simple.
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        problems = self.security_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def security_problems(self) -> list[str]:
        """What is wrong with the TLS/SASL combination (empty: nothing)."""
        protocol = self.security_protocol or "PLAINTEXT"
        if protocol not in PROTOCOLS:
            return [
                f"{PREFIX}SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, not {protocol!r}"
            ]
        problems = _sasl_problems(self, uses_sasl=protocol.startswith("SASL_"))
        problems += _tls_problems(self, uses_tls=protocol.endswith("SSL"))
        return problems

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_namespace)

    def fetch_wait_ms(self, tansu_budget_ms: int) -> int:
        """`fetch.wait.max.ms` for a consumer that accepts `tansu_budget_ms` of added latency
        on Tansu; on Kafka the long wait, which returns as soon as data arrives."""
        return tansu_budget_ms if self.profile == "tansu" else LONG_FETCH_WAIT_MS

    def quiet_check(self, tansu_interval: timedelta) -> timedelta:
        """How often a quiet consumer looks for new data instead of fetching
        (events/quiet.py): on Tansu `tansu_interval`; on Kafka 0, never pausing, since a
        waiting fetch there costs nothing and returns as soon as data arrives."""
        return tansu_interval if self.profile == "tansu" else timedelta(0)

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
            "ssl.key.password": (
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            ),
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
            "fetch.wait.max.ms": self.fetch_wait_ms(20),
        }
        return conf | self.extra | overrides

    def admin(self) -> dict[str, Any]:
        return self.common()

    def with_extra(self, **properties: str) -> KafkaSettings:
        """A copy with more librdkafka properties (they win over the defaults above)."""
        return self.model_copy(update={"extra": self.extra | properties})


def _sasl_problems(settings: KafkaSettings, uses_sasl: bool) -> list[str]:
    given = {
        "SASL_MECHANISM": settings.sasl_mechanism,
        "SASL_USERNAME": settings.sasl_username,
        "SASL_PASSWORD": settings.sasl_password,
    }
    if not uses_sasl:
        stray = [PREFIX + name for name, value in given.items() if value is not None]
        # librdkafka would ignore them: the operator meant SASL but would get none.
        return (
            [f"{', '.join(stray)} need SECURITY_PROTOCOL SASL_PLAINTEXT or SASL_SSL"]
            if stray
            else []
        )
    missing = [PREFIX + name for name, value in given.items() if not value]
    if missing:
        return [f"SASL needs {', '.join(missing)} (or the matching _FILE variables)"]
    if settings.sasl_mechanism not in SASL_MECHANISMS:
        return [
            f"{PREFIX}SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
            f"not {settings.sasl_mechanism!r}"
        ]
    return []


def _tls_problems(settings: KafkaSettings, uses_tls: bool) -> list[str]:
    files = {
        "SSL_CA_LOCATION": settings.ssl_ca_location,
        "SSL_CERTIFICATE_LOCATION": settings.ssl_certificate_location,
        "SSL_KEY_LOCATION": settings.ssl_key_location,
    }
    others = {
        "SSL_KEY_PASSWORD": settings.ssl_key_password,
        "SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": settings.ssl_endpoint_identification_algorithm,
    }
    if not uses_tls:
        stray = [PREFIX + name for name, value in (files | others).items() if value is not None]
        return [f"{', '.join(stray)} need SECURITY_PROTOCOL SSL or SASL_SSL"] if stray else []
    problems = [
        f"{PREFIX}{name}={location}: no such file or directory"
        for name, location in files.items()
        # "probe": librdkafka looks for the system CA bundle itself.
        if location and location != "probe" and not Path(location).exists()
    ]
    if (settings.ssl_certificate_location is None) != (settings.ssl_key_location is None):
        problems.append(
            f"a client certificate needs both {PREFIX}SSL_CERTIFICATE_LOCATION and "
            f"{PREFIX}SSL_KEY_LOCATION"
        )
    check = settings.ssl_endpoint_identification_algorithm
    if check is not None and check not in ENDPOINT_CHECKS:
        problems.append(
            f"{PREFIX}SSL_ENDPOINT_IDENTIFICATION_ALGORITHM must be one of "
            f"{', '.join(ENDPOINT_CHECKS)}, not {check!r}"
        )
    return problems
