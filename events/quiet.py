"""Stop fetching from Tansu while a consumer is quiet; one ListOffsets request per check
finds new data.

Tansu answers an empty fetch only when its wait runs out, and each costs it about a
millisecond of CPU: the notification worker, whose short wait keeps it on the user's path,
kept the broker at ~0.05 core with nothing to do (docs/performance.md). A quiet consumer's
partitions are paused instead, and every `check_every` one ListOffsets request for all of
them (half the broker's cost of an empty fetch, and no wait) says whether anything came.

Two things librdkafka does that shape this:

- A resumed partition is fetched only when the client's broker thread next wakes, up to a
  second later: after a resume, a metadata request wakes it, and the fetch goes out at once.
- Pausing drops what was fetched but not yet handed out, and fetching resumes at the
  consumer's position. So "is there anything new" compares each partition's end with the
  position, not with what the last fetch saw.

Every doubt (a failed request, an offset that cannot be known) resumes fetching: the cost
of a mistake is the broker's CPU, never a message left behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from events.consuming import poll_batch

log = logging.getLogger(__name__)

# ListOffsets' timestamp for "the offset after the last message".
LATEST = -1
# librdkafka counts timeouts in whole milliseconds: a wait can end this much early.
SLACK = 0.001
Partition = tuple[str, int]


class QuietFetch:
    """`poll_batch` for a consumer that starts at the earliest offset (or where `start`
    says), pausing its partitions after `quiet_after` seconds without a message and looking
    for new data every `check_every` seconds (0: never pause). Call it from one thread at a
    time (the consumer's poll thread), and `assigned` from a subscriber's `on_assign`."""

    def __init__(
        self,
        consumer: Any,
        *,
        quiet_after: float,
        check_every: float,
        request_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        start: Callable[[TopicPartition], int | None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._start = start
        self._quiet_after, self._check_every = quiet_after, check_every
        self._timeout, self._clock = request_timeout, clock
        self._last_data = clock()
        # Where each paused partition's next message would be; None while fetching.
        self._read_up_to: dict[Partition, int] | None = None
        self._reassigned = False
        self._next_check = 0.0

    @property
    def paused(self) -> bool:
        return self._read_up_to is not None

    def assigned(self) -> None:
        """The group handed out partitions: fetch all of them again (a partition paused
        before a rebalance may come back paused)."""
        self._reassigned = True

    def poll(self, most: int, timeout: float) -> list[Any]:
        """Up to `most` messages, waiting at most about `timeout` for the first. While
        paused it checks once `check_every` has passed since the last check, however the
        calls are spaced (serving the consumer's callbacks meanwhile), and returns at once
        with what a resume brings."""
        if not self.paused:
            msgs = poll_batch(self._consumer, most, timeout)
            self._reassigned = False  # fetching already: a new assignment needs nothing
            now = self._clock()
            if msgs:
                self._last_data = now
            elif self._check_every > 0 and now - self._last_data >= self._quiet_after:
                self._pause()
            return msgs
        deadline = self._clock() + timeout
        while True:
            wait = min(self._next_check, deadline) - self._clock()
            msgs = poll_batch(self._consumer, most, max(wait, 0.0))
            if msgs or self._reassigned:
                self.resume()
                return msgs
            now = self._clock()
            if now >= self._next_check - SLACK:
                self._next_check = now + self._check_every
                if self._anything_new():
                    self.resume()
                    return []
            if now >= deadline - SLACK:
                return []

    def _pause(self) -> None:
        partitions = self._consumer.assignment()
        if not partitions:
            return
        self._consumer.pause(partitions)
        try:
            self._read_up_to = self._positions(partitions)
        except KafkaException as exc:
            log.debug("positions unknown, fetching on: %s", exc)
            self._read_up_to = {}
        # A message may have come between the last empty fetch and the pause.
        self._next_check = self._clock() + self._check_every
        if self._anything_new():
            self.resume()

    def _positions(self, partitions: list[TopicPartition]) -> dict[Partition, int]:
        """Each partition's next offset to hand out: the consumer's position, else where
        the caller says it started (`start`: nothing read yet), else its group's committed
        offset, else the partition's first offset (the consumer starts at the earliest)."""
        known = {(tp.topic, tp.partition): tp.offset for tp in self._consumer.position(partitions)}
        if self._start is not None:
            for (topic, partition), offset in list(known.items()):
                started = self._start(TopicPartition(topic, partition)) if offset < 0 else None
                if started is not None:
                    known[(topic, partition)] = started
        unread = [TopicPartition(t, p) for (t, p), offset in known.items() if offset < 0]
        if unread:
            for tp in self._consumer.committed(unread, timeout=self._timeout):
                known[(tp.topic, tp.partition)] = tp.offset
        for (topic, partition), offset in list(known.items()):
            if offset < 0:
                low, _ = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self._timeout, cached=False
                )
                known[(topic, partition)] = low
        return known

    def _anything_new(self) -> bool:
        """One ListOffsets request: has any paused partition's end moved from its position?
        Past it: new messages. Behind it: the broker lost or truncated its log (Tansu keeps
        it in memory and restarts empty), which only fetching resolves (librdkafka's
        offset reset)."""
        read_up_to = self._read_up_to or {}
        if not read_up_to:
            return True
        asked = [TopicPartition(t, p, LATEST) for t, p in read_up_to]
        try:
            ends = self._consumer.offsets_for_times(asked, timeout=self._timeout)
        except KafkaException as exc:
            log.debug("partition ends unknown, fetching on: %s", exc)
            return True
        return any(
            end.error is not None or end.offset != read_up_to.get((end.topic, end.partition))
            for end in ends
        )

    def resume(self) -> None:
        """Fetch again now (a caller that knows data is coming, or stops checking)."""
        if not self.paused:
            return
        partitions = self._consumer.assignment()
        self._read_up_to, self._reassigned = None, False
        self._last_data = self._clock()
        if not partitions:
            return
        self._consumer.resume(partitions)
        # librdkafka's broker thread would see the resume at its next tick, up to a second
        # away; any request through it wakes it, and it fetches the resumed partitions.
        try:
            self._consumer.list_topics(partitions[0].topic, timeout=self._timeout)
        except KafkaException as exc:
            log.debug("wake-up metadata request failed: %s", exc)
