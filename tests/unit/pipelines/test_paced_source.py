"""The paced source with hand-written fakes: a quiet source waits in librdkafka
(returning on the first message), one with data collects its share of the pacing interval
there, one catching up never waits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from pipelines.paced_source import IdleGate, WaitingConsumer, _PacedPartition


class FakeConsumer:
    """Records how it was asked; hands out queued messages."""

    def __init__(self, queued: list[str] | None = None) -> None:
        self.queued = list(queued or [])
        self.calls: list[tuple[str, float]] = []

    def poll(self, timeout: float) -> str | None:
        self.calls.append(("poll", timeout))
        return self.queued.pop(0) if self.queued else None

    def consume(self, num_messages: int, timeout: float) -> list[str]:
        self.calls.append(("consume", timeout))
        taken, self.queued = self.queued[:num_messages], self.queued[num_messages:]
        return taken

    def close(self) -> None:
        self.calls.append(("close", 0))


class FakePartition:
    """Like Bytewax's `_KafkaSourcePartition`: its `next_batch` asks `_consumer.consume`
    with a 1 ms timeout."""

    def __init__(self, consumer: FakeConsumer) -> None:
        self._consumer: Any = consumer

    def next_batch(self) -> list[Any]:
        return list(self._consumer.consume(1000, 0.001))

    def snapshot(self) -> int:
        return 0

    def close(self) -> None:
        self._consumer.close()


def _part(consumer: FakeConsumer, gate: IdleGate) -> _PacedPartition:
    return _PacedPartition(FakePartition(consumer), timedelta(milliseconds=50), 1000, gate=gate)  # type: ignore[arg-type]


def _quiet_gate(wait_ms: int = 100) -> IdleGate:
    gate = IdleGate(timedelta(milliseconds=wait_ms), after=timedelta(seconds=1))
    gate.last_data -= 10  # quiet for ten seconds
    return gate


def test_a_quiet_partition_waits_in_librdkafka_for_its_share_and_is_asked_again_at_once() -> None:
    gate = _quiet_gate(100)
    first, second = FakeConsumer(), FakeConsumer()
    part, _other = _part(first, gate), _part(second, gate)

    assert part.next_batch() == []
    # Two partitions share the 100 ms: each blocks 50 ms, in poll (which ends on a message).
    assert first.calls == [("poll", 0.05)]
    assert part.next_awake() is None


def test_a_message_ends_the_wait_and_the_rest_of_the_queue_comes_without_waiting() -> None:
    gate = _quiet_gate()
    consumer = FakeConsumer(["a", "b", "c"])
    part = _part(consumer, gate)

    assert part.next_batch() == ["a", "b", "c"]
    assert consumer.calls == [("poll", 0.1), ("consume", 0)]
    # Data came: the source is busy again; the next round collects (20 ms at most).
    assert gate.block_seconds() == 0.0
    assert part.next_awake() is None
    consumer.queued = ["d"]
    assert part.next_batch() == ["d"]
    assert consumer.calls[-1] == ("consume", 0.02)


def test_a_source_with_data_collects_its_share_of_the_interval_in_librdkafka() -> None:
    gate = IdleGate(timedelta(milliseconds=100), after=timedelta(seconds=60))
    consumer = FakeConsumer(["a"])
    part, *_others = _part(consumer, gate), _part(FakeConsumer(), gate), _part(FakeConsumer(), gate)

    assert part.next_batch() == ["a"]
    # Three partitions share the 50 ms interval: each gathers for ~17 ms (a whole batch
    # ends it sooner), then is asked again at once instead of Bytewax waking every ms.
    assert consumer.calls == [("consume", pytest.approx(0.05 / 3))]
    assert part.next_awake() is None


def test_a_partition_catching_up_never_waits() -> None:
    gate = IdleGate(timedelta(milliseconds=100), after=timedelta(seconds=60))
    consumer = FakeConsumer([f"m{i}" for i in range(1500)])
    part = _part(consumer, gate)

    assert len(part.next_batch()) == 1000  # a full batch: behind
    assert len(part.next_batch()) == 500
    assert consumer.calls == [("consume", 0.02), ("consume", 0.001)]
    # The catch-up round did not wait, so the 1 ms poll is paced by `next_awake` again.
    assert part.next_awake() is not None


def test_no_wait_configured_leaves_the_consumer_as_it_is() -> None:
    assert _quiet_gate(0).block_seconds() == 0.0
    consumer = FakeConsumer(["x"])
    waiting = WaitingConsumer(consumer)
    assert waiting.consume(10, 0.001) == ["x"]
    assert consumer.calls == [("consume", 0.001)]


def test_closing_a_partition_leaves_the_others_a_larger_share() -> None:
    gate = _quiet_gate(100)
    consumer = FakeConsumer()
    part, other = _part(consumer, gate), _part(FakeConsumer(), gate)
    other.close()
    assert gate.partitions == 1
    part.next_batch()
    assert consumer.calls == [("poll", 0.1)]


class PausingConsumer(FakeConsumer):
    """A one-partition consumer (Bytewax assigns it) that can pause and be asked its end."""

    def __init__(self, end: int) -> None:
        super().__init__()
        self.end = end
        self.events: list[str] = []

    def assignment(self) -> list[Any]:
        return [TopicPartition("tasks", 0)]

    def pause(self, _partitions: list[Any]) -> None:
        self.events.append("pause")

    def resume(self, _partitions: list[Any]) -> None:
        self.events.append("resume")

    def list_topics(self, _topic: str, timeout: float) -> None:
        self.events.append("wake")

    def position(self, partitions: list[Any]) -> list[Any]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def offsets_for_times(self, partitions: list[Any], timeout: float) -> list[Any]:
        self.events.append("ends")
        return [TopicPartition(tp.topic, tp.partition, self.end) for tp in partitions]


class AssignedPartition(FakePartition):
    def __init__(self, consumer: FakeConsumer, offset: int) -> None:
        super().__init__(consumer)
        self._offset = offset  # Bytewax's next offset: the resume offset until a message


def test_with_a_check_a_quiet_partition_pauses_and_a_busy_source_resumes_it() -> None:
    gate = _quiet_gate(100)
    gate.check = timedelta(seconds=30)
    consumer = PausingConsumer(end=12)
    part = _PacedPartition(
        AssignedPartition(consumer, offset=12),  # type: ignore[arg-type]
        timedelta(milliseconds=50), 1000, gate=gate,
    )  # fmt: skip

    assert part.next_batch() == []
    # One empty wait, then paused where Bytewax assigned it (its end: nothing new).
    assert consumer.events == ["pause", "ends"]
    assert part.next_batch() == []  # paused, the next check 30 s away: a plain wait
    assert consumer.events == ["pause", "ends"]

    gate.saw_data()  # another partition of the source has data: every partition fetches
    part.next_batch()
    assert consumer.events == ["pause", "ends", "resume", "wake"]


def test_a_resume_offset_behind_the_end_keeps_the_partition_fetching() -> None:
    gate = _quiet_gate(100)
    gate.check = timedelta(seconds=30)
    consumer = PausingConsumer(end=15)  # three messages since the resume offset
    part = _PacedPartition(
        AssignedPartition(consumer, offset=12),  # type: ignore[arg-type]
        timedelta(milliseconds=50), 1000, gate=gate,
    )  # fmt: skip
    part.next_batch()
    assert consumer.events == ["pause", "ends", "resume", "wake"]
