"""`poll_batch`: the first message ends the wait; the rest of the queue comes with it."""

from __future__ import annotations

from events.consuming import poll_batch


class FakeConsumer:
    def __init__(self, queued: list[str]) -> None:
        self.queued = queued
        self.asked: list[tuple[str, int, float]] = []

    def poll(self, timeout: float) -> str | None:
        self.asked.append(("poll", 1, timeout))
        return self.queued.pop(0) if self.queued else None

    def consume(self, most: int, timeout: float) -> list[str]:
        self.asked.append(("consume", most, timeout))
        taken, self.queued = self.queued[:most], self.queued[most:]
        return taken


def test_nothing_queued_waits_once_and_returns_nothing() -> None:
    consumer = FakeConsumer([])
    assert poll_batch(consumer, 10, 0.5) == []
    assert consumer.asked == [("poll", 1, 0.5)]


def test_the_rest_is_taken_without_waiting_up_to_the_batch_size() -> None:
    consumer = FakeConsumer(["a", "b", "c", "d"])
    assert poll_batch(consumer, 3, 0.5) == ["a", "b", "c"]
    assert consumer.asked == [("poll", 1, 0.5), ("consume", 2, 0)]


def test_a_batch_of_one_never_asks_consume_for_zero() -> None:
    consumer = FakeConsumer(["a", "b"])
    assert poll_batch(consumer, 1, 0.5) == ["a"]
    assert consumer.asked == [("poll", 1, 0.5)]
