"""The worker's pending offsets: the first batch commits at once, later ones at most every
interval; a revoke takes just the partitions leaving."""

from __future__ import annotations

from datetime import timedelta

from confluent_kafka import TopicPartition

from notify_ws.worker.offsets import PendingOffsets


def _as_tuples(parts: list[TopicPartition]) -> set[tuple[str, int, int]]:
    return {(p.topic, p.partition, p.offset) for p in parts}


def test_first_batch_is_due_at_once_then_only_after_the_interval() -> None:
    pending = PendingOffsets(timedelta(hours=1))
    assert not pending and not pending.due()
    pending.add({("tasks", 0): 5})
    assert pending.due()
    assert _as_tuples(pending.take()) == {("tasks", 0, 5)}
    assert not pending

    pending.add({("tasks", 0): 6})
    assert pending and not pending.due()  # an hour to go: it waits (or the idle flush)


def test_later_offsets_of_a_partition_replace_earlier_ones() -> None:
    pending = PendingOffsets(timedelta(0))
    pending.add({("tasks", 0): 5, ("reminders", 0): 2})
    pending.add({("tasks", 0): 9})
    assert _as_tuples(pending.take()) == {("tasks", 0, 9), ("reminders", 0, 2)}


def test_a_revoke_takes_only_the_partitions_leaving() -> None:
    pending = PendingOffsets(timedelta(0))
    pending.add({("tasks", 0): 5, ("tasks", 1): 7})
    leaving = [TopicPartition("tasks", 1)]
    assert _as_tuples(pending.take(leaving)) == {("tasks", 1, 7)}
    assert _as_tuples(pending.take()) == {("tasks", 0, 5)}
