"""KafkaSettings' TLS/SASL checks and their mapping to librdkafka properties."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from events.kafka import KafkaSettings

PASSWORD = "scram-password-from-a-file"


@pytest.fixture
def pem(tmp_path: Path) -> str:
    path = tmp_path / "ca.crt"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


def refused(match: str, **fields: Any) -> str:
    with pytest.raises(ValidationError, match=match) as e:
        KafkaSettings(**fields)
    return str(e.value)


def test_plaintext_is_the_default_and_adds_no_security_properties() -> None:
    assert KafkaSettings(bootstrap="b:9092").common() == {"bootstrap.servers": "b:9092"}


def test_sasl_ssl_with_scram_maps_to_librdkafka_properties(
    tmp_path: Path, pem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("TASKFLOW_KAFKA_SASL_PASSWORD_FILE", str(secret))
    settings = KafkaSettings(
        bootstrap="kafka:9093",
        security_protocol="sasl_ssl",  # either case, as librdkafka
        sasl_mechanism="scram-sha-512",
        sasl_username="taskflow-task-api",
        ssl_ca_location=pem,
        ssl_endpoint_identification_algorithm="https",
    )
    expected = {
        "bootstrap.servers": "kafka:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "taskflow-task-api",
        "sasl.password": PASSWORD,
        "ssl.ca.location": pem,
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert settings.common() == expected
    assert expected.items() <= settings.producer().items()
    assert expected.items() <= settings.consumer("g").items()
    assert settings.admin() == expected
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_every_supported_mechanism_is_accepted(mechanism: str) -> None:
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username="u",
        sasl_password=PASSWORD,
    )
    assert settings.common()["sasl.mechanism"] == mechanism


def test_ssl_with_a_client_certificate_for_mutual_tls(tmp_path: Path, pem: str) -> None:
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_text("c")
    key.write_text("k")
    conf = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_location=pem,
        ssl_certificate_location=str(cert),
        ssl_key_location=str(key),
        ssl_key_password=PASSWORD,
    ).common()
    assert conf["ssl.certificate.location"] == str(cert)
    assert conf["ssl.key.location"] == str(key)
    assert conf["ssl.key.password"] == PASSWORD


def test_ssl_without_a_ca_bundle_uses_the_system_store() -> None:
    assert KafkaSettings(security_protocol="SSL").common()["security.protocol"] == "SSL"
    assert KafkaSettings(security_protocol="SSL", ssl_ca_location="probe").common()


def test_an_unknown_protocol_is_refused_with_the_choices() -> None:
    message = refused("TASKFLOW_KAFKA_SECURITY_PROTOCOL must be one of", security_protocol="TLS")
    assert "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL" in message


def test_an_unsupported_mechanism_is_refused() -> None:
    refused(
        "TASKFLOW_KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        security_protocol="SASL_SSL",
        sasl_mechanism="GSSAPI",
        sasl_username="u",
        sasl_password=PASSWORD,
    )


def test_sasl_needs_mechanism_user_and_password() -> None:
    message = refused("SASL needs", security_protocol="SASL_SSL", sasl_username="u")
    assert "TASKFLOW_KAFKA_SASL_MECHANISM" in message
    assert "TASKFLOW_KAFKA_SASL_PASSWORD" in message
    assert "TASKFLOW_KAFKA_SASL_USERNAME" not in message


def test_sasl_settings_without_a_sasl_protocol_are_refused() -> None:
    # librdkafka would silently connect without authentication.
    message = refused(
        "need SECURITY_PROTOCOL SASL_PLAINTEXT or SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password=PASSWORD,
    )
    assert PASSWORD not in message


def test_tls_settings_without_a_tls_protocol_are_refused(pem: str) -> None:
    refused(
        "TASKFLOW_KAFKA_SSL_CA_LOCATION need SECURITY_PROTOCOL SSL or SASL_SSL",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password=PASSWORD,
        ssl_ca_location=pem,
    )


def test_a_missing_ca_bundle_is_refused_before_any_connection(tmp_path: Path) -> None:
    refused(
        "TASKFLOW_KAFKA_SSL_CA_LOCATION=.*: no such file",
        security_protocol="SSL",
        ssl_ca_location=str(tmp_path / "absent.crt"),
    )


def test_a_client_certificate_needs_its_key(pem: str) -> None:
    refused(
        "needs both TASKFLOW_KAFKA_SSL_CERTIFICATE_LOCATION and TASKFLOW_KAFKA_SSL_KEY_LOCATION",
        security_protocol="SSL",
        ssl_certificate_location=pem,
    )


def test_hostname_verification_is_https_or_none() -> None:
    refused(
        "SSL_ENDPOINT_IDENTIFICATION_ALGORITHM must be one of https, none",
        security_protocol="SSL",
        ssl_endpoint_identification_algorithm="strict",
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    message = refused(
        "SASL needs",
        security_protocol="SASL_SSL",
        ssl_ca_location=str(tmp_path / "absent.crt"),
    )
    assert "no such file" in message


def test_settings_from_the_environment_are_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TASKFLOW_KAFKA_SASL_PASSWORD", PASSWORD)
    with pytest.raises(ValidationError, match="SASL needs") as e:
        KafkaSettings()
    assert PASSWORD not in str(e.value)


def test_the_tansu_profile_keeps_each_consumers_latency_budget() -> None:
    settings = KafkaSettings()
    assert settings.profile == "tansu"
    assert settings.fetch_wait_ms(250) == 250
    assert settings.consumer("g")["fetch.wait.max.ms"] == 20
    # A quiet consumer pauses and checks for data instead of polling (events/quiet.py).
    assert settings.quiet_check(timedelta(milliseconds=50)) == timedelta(milliseconds=50)


def test_the_kafka_profile_waits_long_because_the_broker_answers_on_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKFLOW_KAFKA_PROFILE", "kafka")
    settings = KafkaSettings()
    assert settings.fetch_wait_ms(10) == 500
    assert settings.consumer("g")["fetch.wait.max.ms"] == 500
    # An empty fetch is free there: a quiet consumer never pauses.
    assert settings.quiet_check(timedelta(milliseconds=50)) == timedelta(0)
    # A caller's own override still wins over the profile.
    assert settings.consumer("g", **{"fetch.wait.max.ms": 5})["fetch.wait.max.ms"] == 5


def test_an_unknown_broker_profile_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFLOW_KAFKA_PROFILE", "redpanda")
    with pytest.raises(ValidationError, match="profile"):
        KafkaSettings()
