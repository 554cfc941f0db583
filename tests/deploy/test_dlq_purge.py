"""`taskflow dlq purge`: who owns a dead letter, and the rewrite with its crash journal, over
a hand-written in-memory broker (the real one: tests/integration/operations/test_dlq_purge.py)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pytest

from deploy import dlq_purge
from deploy.dlq import DeadLetter, DlqError
from deploy.dlq_purge import DlqPurge, Layout, Outgoing, owner, plan
from events import dlq

T0 = 1_768_478_400_000  # 2026-01-15T12:00Z in milliseconds
TOPIC = "taskflow.dlq"
STAGING = TOPIC + ".purge"


def event(user: str, n: int) -> bytes:
    return orjson.dumps({"type": "task.created", "userid": user, "data": {"n": n}})


@dataclass
class FakeTopic:
    topic_id: str
    partitions: list[list[Outgoing]]
    replicas: int = 1
    configs: dict[str, str] = field(default_factory=dict)


class FakeBroker:
    """Topics as lists of records per partition; a write to a missing topic creates it with
    `auto_partitions` partitions, as Tansu and a default Kafka do for a producer."""

    def __init__(self, auto_partitions: int = 4) -> None:
        self.topics: dict[str, FakeTopic] = {}
        self.auto_partitions = auto_partitions
        self._ids = (f"id-{n}" for n in itertools.count())
        self.clock = itertools.count(T0 + 10_000)

    def layout(self, topic: str) -> Layout | None:
        found = self.topics.get(topic)
        if found is None:
            return None
        return Layout(found.topic_id, len(found.partitions), found.replicas, dict(found.configs))

    def read(self, topic: str) -> list[DeadLetter]:
        found = self.topics.get(topic)
        if found is None:
            raise DlqError(f"topic {topic} does not exist")
        return [
            DeadLetter(
                dlq_partition=p,
                dlq_offset=o,
                topic="",
                partition=None,
                offset=None,
                consumer="",
                error="",
                when=datetime.fromtimestamp(r.timestamp_ms / 1000, UTC) if r.timestamp_ms else None,
                key=r.key,
                value=r.value,
                headers=r.headers,
            )
            for p, records in enumerate(found.partitions)
            for o, r in enumerate(records)
        ]

    def write(self, topic: str, records: Sequence[Outgoing]) -> None:
        for record in records:
            if topic not in self.topics:
                self.create(topic, Layout("", self.auto_partitions, 1))
            stamped = record
            if record.timestamp_ms is None:
                stamped = Outgoing(
                    record.partition, record.key, record.value, record.headers, next(self.clock)
                )
            self.topics[topic].partitions[record.partition].append(stamped)

    def create(self, topic: str, layout: Layout) -> Layout:
        if topic not in self.topics:
            partitions: list[list[Outgoing]] = [[] for _ in range(layout.partitions)]
            self.topics[topic] = FakeTopic(next(self._ids), partitions, layout.replicas)
        self.topics[topic].configs |= layout.configs
        made = self.layout(topic)
        assert made is not None
        return made

    def delete(self, topic: str, topic_id: str) -> None:
        if topic in self.topics and self.topics[topic].topic_id == topic_id:
            del self.topics[topic]


class Crash(BaseException):
    """The process dies here (BaseException: nothing in the purge may catch it)."""


def crash_at(step: str, times: int = 1) -> Callable[[str], None]:
    """A checkpoint that dies at the `times`-th `step`."""
    seen = itertools.count(1)

    def checkpoint(at: str) -> None:
        if at == step and next(seen) == times:
            raise Crash(step)

    return checkpoint


def dead(broker: FakeBroker, partition: int, key: bytes | None, value: bytes, n: int) -> None:
    headers = ((dlq.SOURCE_TOPIC, b"taskflow.tasks"), (dlq.SOURCE_OFFSET, str(n).encode()))
    broker.write(TOPIC, [Outgoing(partition, key, value, headers, T0 + n)])


def filled() -> FakeBroker:
    """A DLQ of 3 partitions: alice's and bob's dead letters and two that name no user."""
    broker = FakeBroker()
    broker.create(TOPIC, Layout("", 3, 1, {"retention.ms": "2592000000"}))
    for n in range(12):
        user = "alice" if n % 3 == 0 else "bob"
        dead(broker, n % 3, f"task-{n}".encode(), event(user, n), n)
    dead(broker, 1, b"task-x", b"not json", 20)
    dead(broker, 2, b"alice", b"\xff poison", 21)  # keyed by user: alice's
    return broker


def fingerprint(letter: DeadLetter) -> tuple[object, ...]:
    """A dead letter as its owner would see it, wherever it sits."""
    headers = tuple((k, v) for k, v in letter.headers if not k.startswith("dlq.purge."))
    return (letter.key, letter.value, headers, letter.when)


def expected_after(broker: FakeBroker) -> list[tuple[object, ...]]:
    return sorted((fingerprint(d) for d in broker.read(TOPIC) if owner(d) != "alice"), key=repr)


def contents(broker: FakeBroker) -> list[tuple[object, ...]]:
    return sorted((fingerprint(d) for d in broker.read(TOPIC)), key=repr)


def test_owner_is_the_events_user_else_the_key_else_unknown() -> None:
    broker = filled()
    letters = broker.read(TOPIC)
    split = plan(letters, "alice")
    assert len(split.gone) == 5 and len(split.kept) == 9
    assert [d.key for d in split.unknown] == [b"task-x"]
    assert {owner(d) for d in split.gone} == {"alice"}
    # An event about bob that happens to be keyed "alice" stays: the event says whose it is.
    bob_keyed_alice = DeadLetter(0, 99, "", None, None, "", "", None, b"alice", event("bob", 1), ())
    assert owner(bob_keyed_alice) == "bob"
    assert plan([bob_keyed_alice], "alice").gone == []


def test_purge_leaves_every_other_letter_once_as_it_was() -> None:
    broker = filled()
    before = broker.layout(TOPIC)
    want = expected_after(broker)
    report = DlqPurge(broker, TOPIC).run("alice")

    assert contents(broker) == want
    assert [owner(d) for d in broker.read(TOPIC)].count("alice") == 0
    after = broker.layout(TOPIC)
    assert after is not None and before is not None
    assert (after.partitions, after.configs) == (3, {"retention.ms": "2592000000"})
    assert after.topic_id != before.topic_id
    assert STAGING not in broker.topics
    # Every letter goes back to its own partition.
    for letter in broker.read(TOPIC):
        assert letter.headers_of(dlq.PURGE_FROM).split(":")[0] == str(letter.dlq_partition)
    assert report.lines()[-2:] == [
        "purged 5 dead letters about alice, kept 9, 1 name no user (kept)",
        "the kept dead letters have new ids (see `taskflow dlq list`)",
    ]


def test_nothing_about_the_user_rewrites_nothing() -> None:
    broker = filled()
    before = broker.layout(TOPIC)
    report = DlqPurge(broker, TOPIC).run("carol")
    assert broker.layout(TOPIC) == before
    assert report.lines() == ["purged 0 dead letters about carol, kept 14, 2 name no user (kept)"]
    empty = FakeBroker()
    empty.create(TOPIC, Layout("", 3, 1))
    assert DlqPurge(empty, TOPIC).run("alice").plan.gone == []


def test_a_dry_run_counts_and_changes_nothing() -> None:
    broker = filled()
    before = contents(broker)
    lines = DlqPurge(broker, TOPIC).preview("alice").lines()
    assert len(lines) == 6 and all(line.startswith("would purge\t") for line in lines[:5])
    assert lines[-1] == (
        "dry run: 5 dead letters about alice would be purged, 9 kept, 1 name no user (kept); "
        "nothing changed (add --yes to purge)"
    )
    assert contents(broker) == before and STAGING not in broker.topics


STEPS = [("staged", 1), ("committed", 1), ("deleted", 1), ("recreated", 1)]
STEPS += [("copied", 1), ("copied", 3), ("done", 1)]


@pytest.mark.parametrize(("step", "times"), STEPS)
def test_a_purge_killed_at_any_step_and_run_again_loses_and_doubles_nothing(
    step: str, times: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dlq_purge, "COPY_CHUNK", 2)
    broker = filled()
    want = expected_after(broker)
    with pytest.raises(Crash):
        DlqPurge(broker, TOPIC, checkpoint=crash_at(step, times)).run("alice")
    # A second crash while finishing the first purge (if it gets that far) changes nothing.
    with contextlib.suppress(Crash):
        DlqPurge(broker, TOPIC, checkpoint=crash_at("copied", 2)).run("alice")
    DlqPurge(broker, TOPIC).run("alice")
    assert contents(broker) == want
    assert STAGING not in broker.topics


def test_dead_letters_written_during_the_purge_are_kept_or_purged() -> None:
    broker = filled()
    want = expected_after(broker)
    late: list[int] = []

    def writer(step: str) -> None:
        if step == "staged":  # after the copy, before the DLQ is deleted
            dead(broker, 0, b"task-late", event("bob", 30), 30)
            dead(broker, 1, b"task-late", event("alice", 31), 31)
            late.append(30)
        if step == "deleted":  # the DLQ does not exist: the writer auto-creates it
            dead(broker, 3, b"task-window", event("bob", 32), 32)
            late.append(32)

    DlqPurge(broker, TOPIC, checkpoint=writer).run("alice")
    got = broker.read(TOPIC)
    assert [owner(d) for d in got].count("alice") == 0
    assert sorted(fingerprint(d) for d in got if d.key == b"task-x") == [
        f for f in want if f[0] == b"task-x"
    ]
    extra = sorted(n for d in got for n in late if d.value == event("bob", n))
    assert extra == [30, 32]
    assert len(got) == len(want) + 2
    # The writer made the topic with 4 partitions: the copies still go to their own.
    assert broker.layout(TOPIC) is not None and len(broker.topics[TOPIC].partitions) == 4
    assert all(
        d.headers_of(dlq.PURGE_FROM).split(":")[0] == str(d.dlq_partition)
        for d in got
        if d.headers_of(dlq.PURGE_FROM)
    )


def test_an_interrupted_purge_is_finished_before_another_user_is_purged() -> None:
    broker = filled()
    with pytest.raises(Crash):
        DlqPurge(broker, TOPIC, checkpoint=crash_at("deleted")).run("alice")
    report = DlqPurge(broker, TOPIC).run("bob")
    assert report.lines()[0] == "finished an interrupted purge: 5 dead letters gone"
    assert {owner(d) for d in broker.read(TOPIC)} == {"task-x"}


def test_copies_go_to_the_same_partition_number_or_wrap() -> None:
    copy = DeadLetter(5, 0, "", None, None, "", "", None, None, b"", ((dlq.PURGE_FROM, b"5:7"),))
    assert dlq_purge.home(copy, 6) == 5 and dlq_purge.home(copy, 4) == 1
