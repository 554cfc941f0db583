"""Offsets the worker has made durable but not yet committed to the group."""

from __future__ import annotations

import time
from datetime import timedelta

from confluent_kafka import TopicPartition


class PendingOffsets:
    """Committed at most every `interval`, and whenever the worker goes idle.

    An offset commit is a broker round trip on the worker's path: at 50 changes/s the worker
    committed 50 times a second, each waited for in a thread. Every event is applied once by
    its id, so a commit up to `interval` late costs only that much re-reading after a crash
    or a rebalance, which the dedupe absorbs.
    """

    def __init__(self, interval: timedelta) -> None:
        self._interval = interval.total_seconds()
        self._offsets: dict[tuple[str, int], int] = {}
        self._next = 0.0  # the first batch commits at once

    def add(self, offsets: dict[tuple[str, int], int]) -> None:
        self._offsets.update(offsets)

    def __bool__(self) -> bool:
        return bool(self._offsets)

    def due(self) -> bool:
        return bool(self._offsets) and time.monotonic() >= self._next

    def take(self, partitions: list[TopicPartition] | None = None) -> list[TopicPartition]:
        """The offsets to commit now (only those of `partitions` when given), forgotten here."""
        keep = None if partitions is None else {(p.topic, p.partition) for p in partitions}
        taken = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in self._offsets.items()
            if keep is None or (topic, partition) in keep
        ]
        for tp in taken:
            del self._offsets[(tp.topic, tp.partition)]
        self._next = time.monotonic() + self._interval
        return taken
