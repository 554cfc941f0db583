"""`taskflow dlq purge` on the real broker of the test session (Tansu): the user's dead
letters go, everyone else's stay once, as they were; a purge killed (SIGKILL) at any step
and run again ends the same; a dead letter written while the DLQ is recreated is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource

from deploy.cli import main
from deploy.dlq import DeadLetter, KafkaDeadLetterStore
from deploy.dlq_purge import DlqPurge, owner
from deploy.dlq_purge_kafka import KafkaPurgeBroker
from events import dlq
from events.kafka import KafkaSettings

T0 = 1_768_478_400_000  # 2026-01-15T12:00Z in milliseconds
RETENTION = "2592000000"
KILLED_AT = """
import os, signal, sys
from deploy import dlq_purge
from deploy.dlq_purge_kafka import KafkaPurgeBroker
from events.kafka import KafkaSettings

dlq_purge.COPY_CHUNK = 4
step, times = sys.argv[1], int(sys.argv[2])
seen = []
def checkpoint(at):
    seen.append(at)
    if seen.count(step) == times:
        os.kill(os.getpid(), signal.SIGKILL)
settings = KafkaSettings()
dlq_purge.DlqPurge(KafkaPurgeBroker(settings), settings.topics.dlq, checkpoint).run("alice")
"""


@pytest.fixture
def dlq_env(kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    """The CLI reads its Kafka settings from the environment, as in a deployment."""
    monkeypatch.setenv("TASKFLOW_KAFKA_BOOTSTRAP", kafka_settings.bootstrap)
    monkeypatch.setenv("TASKFLOW_KAFKA_TOPIC_NAMESPACE", kafka_settings.topic_namespace)
    return kafka_settings


@pytest.fixture
def filled(dlq_env: KafkaSettings) -> Iterator[KafkaSettings]:
    """A DLQ (3 partitions, 30 days' retention) with dead letters of alice and bob, one
    poison message that names no user and one keyed by alice."""
    topic = dlq_env.topics.dlq
    admin = AdminClient(dlq_env.admin())
    entry = ConfigEntry("retention.ms", RETENTION, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(15)
    producer = Producer(dlq_env.producer())
    for n in range(24):
        user = "alice" if n % 3 == 0 else "bob"
        value = orjson.dumps({"type": "task.created", "userid": user, "n": n})
        send(producer, topic, n % 3, f"task-{n}".encode(), value, n)
    send(producer, topic, 1, b"task-x", b"not json", 40)
    send(producer, topic, 2, b"alice", b"\xff poison", 41)
    assert producer.flush(15) == 0
    yield dlq_env


def send(producer: Producer, topic: str, partition: int, key: bytes, value: bytes, n: int) -> None:
    origin = dlq.dlq_headers("taskflow.tasks", 1, n, "notify-worker", "PoolTimeout")
    headers = [("traceparent", b"00-abc"), *origin]
    producer.produce(topic, value, key, partition=partition, headers=headers, timestamp=T0 + n)


def letters(settings: KafkaSettings) -> list[DeadLetter]:
    return KafkaDeadLetterStore(settings).read()


def fingerprint(letter: DeadLetter) -> tuple[object, ...]:
    headers = tuple((k, v) for k, v in letter.headers if not k.startswith("dlq.purge."))
    return (letter.key, letter.value, headers, letter.when)


def others(settings: KafkaSettings) -> list[tuple[object, ...]]:
    return sorted((fingerprint(d) for d in letters(settings) if owner(d) != "alice"), key=repr)


def everything(settings: KafkaSettings) -> list[tuple[object, ...]]:
    return sorted((fingerprint(d) for d in letters(settings)), key=repr)


def taskflow(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 0) -> list[str]:
    got = main(argv)
    captured = capsys.readouterr()
    assert got == code, captured.err
    return captured.out.splitlines() if code == 0 else captured.err.splitlines()


def assert_purged(settings: KafkaSettings, want: list[tuple[object, ...]]) -> None:
    assert everything(settings) == want
    broker = KafkaPurgeBroker(settings)
    layout = broker.layout(settings.topics.dlq)
    assert layout is not None
    assert (layout.partitions, layout.configs.get("retention.ms")) == (3, RETENTION)
    assert broker.layout(settings.topics.dlq + ".purge") is None
    for letter in letters(settings):
        assert letter.headers_of(dlq.PURGE_FROM).split(":")[0] == str(letter.dlq_partition)


def test_dry_run_then_purge(filled: KafkaSettings, capsys: pytest.CaptureFixture[str]) -> None:
    want = others(filled)
    before = everything(filled)
    dry = taskflow(["dlq", "purge", "--user", "alice"], capsys)
    assert len(dry) == 10 and dry[-1] == (
        "dry run: 9 dead letters about alice would be purged, 17 kept, 1 name no user "
        "(kept); nothing changed (add --yes to purge)"
    )
    assert everything(filled) == before

    done = taskflow(["dlq", "purge", "--user", "alice", "--yes"], capsys)
    assert done[0] == "purged 9 dead letters about alice, kept 17, 1 name no user (kept)"
    assert_purged(filled, want)
    assert taskflow(["dlq", "list", "--user", "alice"], capsys) == []
    again = taskflow(["dlq", "purge", "--user", "alice", "--yes"], capsys)
    assert again == ["purged 0 dead letters about alice, kept 17, 1 name no user (kept)"]


def test_unknown_user_and_empty_dlq_change_nothing(
    dlq_env: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = KafkaPurgeBroker(dlq_env)
    before = broker.layout(dlq_env.topics.dlq)
    out = taskflow(["dlq", "purge", "--user", "nobody", "--yes"], capsys)
    assert out == ["purged 0 dead letters about nobody, kept 0, 0 name no user (kept)"]
    assert broker.layout(dlq_env.topics.dlq) == before
    assert taskflow(["dlq", "purge", "--user", " ", "--yes"], capsys, code=2) == [
        "taskflow: --user must name a user"
    ]
    with pytest.raises(SystemExit):
        main(["dlq", "purge", "--yes"])  # --user is required


def test_a_user_nobody_wrote_about_keeps_the_topic(
    filled: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = KafkaPurgeBroker(filled)
    before, contents = broker.layout(filled.topics.dlq), everything(filled)
    out = taskflow(["dlq", "purge", "--user", "carol", "--yes"], capsys)
    assert out == ["purged 0 dead letters about carol, kept 26, 2 name no user (kept)"]
    assert broker.layout(filled.topics.dlq) == before and everything(filled) == contents


STEPS = [("staged", 1), ("committed", 1), ("deleted", 1), ("recreated", 1)]
STEPS += [("copied", 2), ("done", 1)]


@pytest.mark.parametrize(("step", "times"), STEPS)
def test_killed_at_a_step_and_run_again(
    filled: KafkaSettings, step: str, times: int, capsys: pytest.CaptureFixture[str]
) -> None:
    want = others(filled)
    killed = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", KILLED_AT, step, str(times)],
        env=os.environ.copy(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    out = taskflow(["dlq", "purge", "--user", "alice", "--yes"], capsys)
    assert [line for line in out if line.startswith("purged ")], out
    assert_purged(filled, want)


def test_a_dead_letter_written_while_the_dlq_is_recreated_is_kept(filled: KafkaSettings) -> None:
    want = others(filled)
    late = orjson.dumps({"type": "task.created", "userid": "bob", "n": "late"})

    def writer(step: str) -> None:
        if step == "deleted":  # no DLQ: the broker creates one for the writer
            # A writer that starts now. (On Tansu a producer that looked the topic up just
            # before the delete can write into the deleted incarnation: docs/operations.md.)
            producer = Producer(filled.producer())
            producer.produce(filled.topics.dlq, late, b"task-late")
            assert producer.flush(15) == 0

    DlqPurge(KafkaPurgeBroker(filled), filled.topics.dlq, writer).run("alice")
    got = letters(filled)
    assert [d.value for d in got].count(late) == 1
    assert sorted((fingerprint(d) for d in got if d.value != late), key=repr) == want
    assert not [d for d in got if owner(d) == "alice"]
