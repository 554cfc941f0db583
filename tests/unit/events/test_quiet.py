"""`QuietFetch`: pause after a quiet spell, find new data with one ListOffsets request,
resume with a wake-up, and fetch whenever in doubt."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from events.quiet import LATEST, QuietFetch

TASKS, REMINDERS = TopicPartition("tasks", 0), TopicPartition("reminders", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """A subscribed consumer with two partitions: what it was asked, in order; a poll
    waits out its timeout on the fake clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.queued: list[str] = []
        self.partitions = [TASKS, REMINDERS]
        self.positions = {("tasks", 0): 7, ("reminders", 0): 3}
        self.committed_offsets: dict[tuple[str, int], int] = {}
        self.lows: dict[tuple[str, int], int] = {}
        self.ends = dict(self.positions)
        self.failing: set[str] = set()
        self.calls: list[str] = []
        self.on_poll: Any = None

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.failing:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    def poll(self, timeout: float) -> str | None:
        self.calls.append("poll")
        if self.on_poll is not None:
            self.on_poll()
        if self.queued:
            return self.queued.pop(0)
        self.clock.now += timeout
        return None

    def consume(self, most: int, timeout: float) -> list[str]:
        taken, self.queued = self.queued[:most], self.queued[most:]
        return taken

    def assignment(self) -> list[TopicPartition]:
        return list(self.partitions)

    def pause(self, partitions: list[TopicPartition]) -> None:
        assert partitions == self.partitions
        self.calls.append("pause")

    def resume(self, partitions: list[TopicPartition]) -> None:
        assert partitions == self.partitions
        self.calls.append("resume")

    def list_topics(self, topic: str, timeout: float) -> None:
        self._call("wake")

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[(tp.topic, tp.partition)])
                for tp in partitions]  # fmt: skip

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self._call("committed")
        return [
            TopicPartition(tp.topic, tp.partition,
                           self.committed_offsets.get((tp.topic, tp.partition), -1001))
            for tp in partitions
        ]  # fmt: skip

    def get_watermark_offsets(
        self, tp: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        assert not cached
        self._call("watermarks")
        key = (tp.topic, tp.partition)
        return self.lows.get(key, 0), self.ends[key]

    def offsets_for_times(
        self, partitions: list[TopicPartition], timeout: float
    ) -> list[TopicPartition]:
        self._call("ends")
        assert all(tp.offset == LATEST for tp in partitions)
        return [TopicPartition(tp.topic, tp.partition, self.ends[(tp.topic, tp.partition)])
                for tp in partitions]  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def consumer(clock: Clock) -> FakeConsumer:
    return FakeConsumer(clock)


def quiet_fetch(consumer: FakeConsumer, clock: Clock, check_every: float = 0.05) -> QuietFetch:
    return QuietFetch(consumer, quiet_after=1.0, check_every=check_every, clock=clock)


def quiet_second(quiet: QuietFetch) -> None:
    """Four empty rounds of 0.25 s: as long as `quiet_after`."""
    for _ in range(4):
        assert quiet.poll(10, 0.25) == []


def go_quiet(quiet: QuietFetch, consumer: FakeConsumer) -> None:
    quiet_second(quiet)
    assert quiet.paused
    consumer.calls.clear()


def test_fetches_until_a_quiet_spell_then_pauses_and_checks_once(
    consumer: FakeConsumer, clock: Clock
) -> None:
    quiet = quiet_fetch(consumer, clock)
    for _ in range(3):  # 0.75 s without a message: still fetching
        assert quiet.poll(10, 0.25) == []
    assert not quiet.paused and "pause" not in consumer.calls
    assert quiet.poll(10, 0.25) == []
    assert quiet.paused
    # Positions were all known: no committed or watermark request, one ends check.
    assert consumer.calls[-2:] == ["pause", "ends"]


def test_messages_keep_it_fetching(consumer: FakeConsumer, clock: Clock) -> None:
    quiet = quiet_fetch(consumer, clock)
    for _ in range(10):
        consumer.queued = ["m"]
        assert quiet.poll(10, 0.25) == ["m"]
        clock.now += 0.9
    assert not quiet.paused


def test_while_paused_it_checks_every_interval_within_the_poll_timeout(
    consumer: FakeConsumer, clock: Clock
) -> None:
    quiet = quiet_fetch(consumer, clock)
    go_quiet(quiet, consumer)
    assert quiet.poll(10, 0.25) == []
    assert quiet.paused
    assert consumer.calls == ["poll", "ends"] * 5  # 0.25 s in 50 ms checks


def test_new_data_resumes_and_wakes_the_broker_thread(consumer: FakeConsumer, clock: Clock) -> None:
    quiet = quiet_fetch(consumer, clock)
    go_quiet(quiet, consumer)
    consumer.ends[("reminders", 0)] = 4
    assert quiet.poll(10, 0.25) == []
    assert not quiet.paused
    assert consumer.calls == ["poll", "ends", "resume", "wake"]
    # Fetching again: the next round is a plain poll, and the quiet spell starts over.
    consumer.queued = ["r"]
    assert quiet.poll(10, 0.25) == ["r"]
    assert not quiet.paused


def test_an_end_behind_the_position_resumes_fetching(consumer: FakeConsumer, clock: Clock) -> None:
    quiet = quiet_fetch(consumer, clock)
    go_quiet(quiet, consumer)
    consumer.ends[("tasks", 0)] = 2  # the broker restarted empty and took two messages
    quiet.poll(10, 0.25)
    assert not quiet.paused
    assert consumer.calls == ["poll", "ends", "resume", "wake"]


def test_a_message_that_came_just_before_the_pause_resumes_at_once(
    consumer: FakeConsumer, clock: Clock
) -> None:
    quiet = quiet_fetch(consumer, clock)
    consumer.ends[("tasks", 0)] = 8  # fetched but not handed out: pausing drops it
    quiet_second(quiet)
    assert not quiet.paused
    assert consumer.calls[-4:] == ["pause", "ends", "resume", "wake"]


def test_a_message_queued_while_paused_is_returned_and_resumes(
    consumer: FakeConsumer, clock: Clock
) -> None:
    quiet = quiet_fetch(consumer, clock)
    go_quiet(quiet, consumer)
    consumer.queued = ["late"]
    assert quiet.poll(10, 0.25) == ["late"]
    assert not quiet.paused


def test_unread_partitions_start_at_the_committed_offset(
    consumer: FakeConsumer, clock: Clock
) -> None:
    consumer.positions[("reminders", 0)] = -1001
    consumer.committed_offsets[("reminders", 0)] = 3
    quiet = quiet_fetch(consumer, clock)
    quiet_second(quiet)
    assert quiet.paused
    assert consumer.calls[-3:] == ["pause", "committed", "ends"]
    consumer.ends[("reminders", 0)] = 4
    quiet.poll(10, 0.25)
    assert not quiet.paused


def test_unread_and_uncommitted_partitions_start_at_their_first_offset(
    consumer: FakeConsumer, clock: Clock
) -> None:
    consumer.positions[("reminders", 0)] = -1001
    consumer.lows[("reminders", 0)] = 1
    consumer.ends[("reminders", 0)] = 2  # one message the consumer has never read
    quiet = quiet_fetch(consumer, clock)
    quiet_second(quiet)
    assert not quiet.paused
    assert consumer.calls[-6:] == ["pause", "committed", "watermarks", "ends", "resume", "wake"]


@pytest.mark.parametrize("failing", ["ends", "committed"])
def test_a_failed_request_resumes_fetching(
    consumer: FakeConsumer, clock: Clock, failing: str
) -> None:
    consumer.positions[("tasks", 0)] = -1001
    consumer.failing.add(failing)
    quiet = quiet_fetch(consumer, clock)
    quiet_second(quiet)
    assert not quiet.paused
    assert consumer.calls[-2:] == ["resume", "wake"]


def test_a_failed_wake_up_still_resumes(consumer: FakeConsumer, clock: Clock) -> None:
    quiet = quiet_fetch(consumer, clock)
    go_quiet(quiet, consumer)
    consumer.failing.add("wake")
    consumer.ends[("tasks", 0)] = 9
    quiet.poll(10, 0.25)
    assert not quiet.paused and consumer.calls[-2:] == ["resume", "wake"]


def test_a_rebalance_while_paused_fetches_the_new_assignment(
    consumer: FakeConsumer, clock: Clock
) -> None:
    quiet = quiet_fetch(consumer, clock)
    go_quiet(quiet, consumer)
    consumer.on_poll = quiet.assigned  # on_assign runs inside poll
    assert quiet.poll(10, 0.25) == []
    assert not quiet.paused
    assert consumer.calls == ["poll", "resume", "wake"]


def test_without_partitions_nothing_is_paused(consumer: FakeConsumer, clock: Clock) -> None:
    consumer.partitions = []
    quiet = quiet_fetch(consumer, clock)
    for _ in range(8):
        quiet.poll(10, 0.25)
    assert not quiet.paused and "pause" not in consumer.calls


def test_a_zero_check_interval_never_pauses(consumer: FakeConsumer, clock: Clock) -> None:
    quiet = quiet_fetch(consumer, clock, check_every=0)
    for _ in range(40):
        quiet.poll(10, 0.25)
    assert not quiet.paused
    assert set(consumer.calls) == {"poll"}


def test_short_polls_check_only_once_the_interval_has_passed(
    consumer: FakeConsumer, clock: Clock
) -> None:
    # A dataflow's partition waits 33 ms at a time; its end is asked every 0.5 s.
    quiet = QuietFetch(consumer, quiet_after=0.0, check_every=0.5, clock=clock)
    assert quiet.poll(10, 0.033) == []
    assert quiet.paused and consumer.calls == ["poll", "pause", "ends"]
    consumer.calls.clear()
    for _ in range(15):  # 15 × 33 ms: just under 0.5 s
        assert quiet.poll(10, 0.033) == []
    assert consumer.calls == ["poll"] * 15
    consumer.calls.clear()
    quiet.poll(10, 0.033)  # the wait is cut at the check, then goes on to its end
    assert consumer.calls == ["poll", "ends", "poll"]


def test_a_start_hook_places_a_partition_nothing_was_read_from(
    consumer: FakeConsumer, clock: Clock
) -> None:
    consumer.positions[("reminders", 0)] = -1001
    started: list[TopicPartition] = []

    def start(tp: TopicPartition) -> int:
        started.append(tp)
        return 3  # where the caller assigned it (a dataflow's resume offset)

    quiet = QuietFetch(consumer, quiet_after=1.0, check_every=0.05, clock=clock, start=start)
    quiet_second(quiet)
    assert quiet.paused
    assert [(tp.topic, tp.partition) for tp in started] == [("reminders", 0)]
    assert "committed" not in consumer.calls and "watermarks" not in consumer.calls


def test_resume_fetches_again_and_is_harmless_when_fetching(
    consumer: FakeConsumer, clock: Clock
) -> None:
    quiet = quiet_fetch(consumer, clock)
    quiet.resume()
    assert "resume" not in consumer.calls
    go_quiet(quiet, consumer)
    quiet.resume()
    assert not quiet.paused and consumer.calls == ["resume", "wake"]
