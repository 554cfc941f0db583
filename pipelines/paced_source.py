"""`KafkaSource` polled in paced batches (and held back on resume): an idle partition is
asked again only after an interval, not in a tight loop; a quiet source waits in
librdkafka instead of letting Bytewax spin."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaSource
from bytewax.inputs import StatefulSourcePartition

from events.consuming import poll_batch
from events.quiet import QuietFetch
from runtime.flow import partition_heartbeat
from runtime.heartbeat import Heartbeat

# While a partition collects, the worker runs nothing else: timers (the reminder flow's)
# fire late by up to this much. 20 ms still turns ~1,000 wake-ups a second into ~50.
COLLECT_AT_MOST = 0.02


@dataclass
class IdleGate:
    """What the partitions of one source in one worker know together: when any of them
    last had data, and how many there are.

    Bytewax 0.21's worker parks for at most 1 ms between steps (a fixed cooldown), so an
    idle flow wakes ~1,000 times a second however long `next_awake` says to wait: 0.03 core
    per flow doing nothing. Once the whole source has been quiet for `after`, a partition
    instead blocks in librdkafka for its share of `wait` (the first message ends the wait
    at once), so the worker wakes a few times a second. With data coming in, a partition
    instead collects for its share of the pacing interval in librdkafka (`pace_seconds`):
    the same batches as pacing by `next_awake`, without the thousand wake-ups a second
    between them.
    """

    wait: timedelta
    after: timedelta = timedelta(seconds=1)
    # While quiet, a partition stops fetching and asks its end this often (events/quiet.py);
    # 0 keeps it fetching.
    check: timedelta = timedelta(0)
    partitions: int = 0
    last_data: float = field(default_factory=time.monotonic)

    def saw_data(self) -> None:
        self.last_data = time.monotonic()

    def block_seconds(self) -> float:
        """How long one partition may block in its next poll (0: don't block)."""
        if self.wait <= timedelta(0) or self.partitions == 0:
            return 0.0
        if time.monotonic() - self.last_data < self.after.total_seconds():
            return 0.0
        # Split among the partitions, which Bytewax polls one after another: a message
        # on any of them waits at most about `wait`, and timers at most that long too.
        return self.wait.total_seconds() / self.partitions

    def pace_seconds(self, interval: timedelta) -> float:
        """How long one partition collects messages per poll under load: its share of
        `interval` (so each partition is still read about once per interval), at most
        `COLLECT_AT_MOST`."""
        if self.partitions == 0:
            return 0.0
        return min(interval.total_seconds() / self.partitions, COLLECT_AT_MOST)


class WaitingConsumer:
    """Stands in for a `_KafkaSourcePartition`'s consumer: its `consume` (called with a
    1 ms timeout) waits up to `wait` seconds for the first message, then takes what else
    is queued without waiting; or, with `collect`, gathers messages for `collect` seconds
    (fewer if a whole batch comes first). Both 0 leave `consume` as it is. With `quiet`,
    a wait pauses the partition once it came back empty and checks its end instead of
    fetching (Tansu's empty fetches cost it CPU); anything but a wait fetches again."""

    def __init__(self, consumer: Any, quiet: QuietFetch | None = None) -> None:
        self._consumer = consumer
        self._quiet = quiet
        self.wait = 0.0
        self.collect = 0.0

    @property
    def paused(self) -> bool:
        return self._quiet is not None and self._quiet.paused

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if self._quiet is not None:
            if self.wait > 0:
                return self._quiet.poll(num_messages, self.wait)
            self._quiet.resume()  # the source has data again: every partition fetches
        if self.collect > 0:
            return list(self._consumer.consume(num_messages, self.collect))
        if self.wait <= 0:
            return list(self._consumer.consume(num_messages, timeout))
        return poll_batch(self._consumer, num_messages, self.wait)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


class _PacedPartition(StatefulSourcePartition[Any, Any]):
    """A Kafka partition polled at most every `interval` unless it is catching up; a
    resumed one stays silent for `hold` first; a quiet one waits in librdkafka (see
    `PacedKafkaSource`)."""

    def __init__(
        self,
        inner: StatefulSourcePartition[Any, Any],
        interval: timedelta,
        full: int,
        hold: timedelta = timedelta(0),
        heartbeat: Heartbeat | None = None,
        gate: IdleGate | None = None,
    ):
        self._inner, self._interval, self._full = inner, interval, full
        self._heartbeat = heartbeat
        self._gate = gate
        self._waiting: WaitingConsumer | None = None
        self._catching_up = False
        if gate is not None:
            # Bytewax 0.21.1 is the last release: `_consumer` is the partition's one
            # librdkafka consumer (tests/unit/pipelines/test_paced_source.py pins this).
            consumer = inner._consumer  # type: ignore[attr-defined]
            quiet = None
            if gate.check > timedelta(0):

                def assigned_at(_partition: Any) -> int | None:
                    # Before its first message the partition is where Bytewax assigned
                    # it: the resume offset, or a symbolic one (the beginning) below 0.
                    offset: int = inner._offset  # type: ignore[attr-defined]
                    return offset if offset >= 0 else None

                # The gate has already found the source quiet when a partition waits: it
                # pauses after its first empty wait.
                quiet = QuietFetch(
                    consumer,
                    quiet_after=0.0,
                    check_every=gate.check.total_seconds(),
                    start=assigned_at,
                )
            self._waiting = WaitingConsumer(consumer, quiet)
            inner._consumer = self._waiting  # type: ignore[attr-defined]
            gate.partitions += 1
        # Bytewax calls next_batch only once next_awake has passed: the hold is just a
        # later first wake-up, the same mechanism as the pacing.
        self._next: datetime | None = datetime.now(UTC) + hold if hold else None

    def next_batch(self) -> list[Any]:
        if self._heartbeat is not None:
            # Liveness: the worker came back to poll (it is not stuck in a step or a sink).
            self._heartbeat.beat()
        blocking = collecting = 0.0
        if self._gate is not None and self._waiting is not None:
            blocking = self._gate.block_seconds()
            if not blocking and not self._catching_up:
                collecting = self._gate.pace_seconds(self._interval)
            self._waiting.wait, self._waiting.collect = blocking, collecting
        batch = list(self._inner.next_batch())
        if batch and self._gate is not None:
            self._gate.saw_data()
        self._catching_up = len(batch) >= self._full
        if self._catching_up or blocking or collecting:
            # Catching up, or already waited in librdkafka (quiet, or collecting this
            # partition's share of the interval): ask again at once.
            self._next = None
        else:
            self._next = datetime.now(UTC) + self._interval
        return batch

    def next_awake(self) -> datetime | None:
        return self._next

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        if self._gate is not None:
            self._gate.partitions -= 1
        self._inner.close()


class PacedKafkaSource(KafkaSource):
    """`KafkaSource` whose partitions are polled in batches every `interval`.

    Bytewax re-activates downstream steps for every non-empty poll; each activation of
    the timer step scans every armed key, so fewer, larger batches keep it cheap.

    When the whole source has been quiet for a second, its partitions wait in librdkafka
    for up to `idle_wait` between them instead (see `IdleGate`); 0 turns that off. With
    `idle_check` too, a waiting partition pauses and asks its end that often instead of
    fetching (`WaitingConsumer`).

    After a restart from recovery, partitions hold back for `resume_hold`: Bytewax 0.21
    runs items of the resume epoch eagerly, before that epoch closes and the keys' saved
    state is loaded; a key touched then gets a fresh logic, which the load then replaces,
    dropping what the fresh one held (lost or doubled reminders, seen in the chaos suite).
    Holding past the first epochs (one per snapshot interval) keeps loads first.
    """

    def __init__(
        self,
        interval: timedelta,
        *args: Any,
        resume_hold: timedelta = timedelta(0),
        idle_wait: timedelta = timedelta(0),
        idle_check: timedelta = timedelta(0),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._interval = interval
        self._resume_hold = resume_hold
        # One gate per source object, so per process: with several workers (threads) in
        # one process they share it, the wait split among all their partitions.
        self._gate = IdleGate(idle_wait, check=idle_check) if idle_wait > timedelta(0) else None

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
        inner = super().build_part(step_id, for_part, resume_state)
        hold = self._resume_hold if resume_state is not None else timedelta(0)
        heartbeat = partition_heartbeat(step_id, for_part)
        return _PacedPartition(inner, self._interval, self._batch_size, hold, heartbeat, self._gate)
