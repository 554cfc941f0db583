"""`KafkaSource` polled in paced batches (and held back on resume): an idle partition is
asked again only after an interval, not in a tight loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaSource
from bytewax.inputs import StatefulSourcePartition

from runtime.flow import partition_heartbeat
from runtime.heartbeat import Heartbeat


class _PacedPartition(StatefulSourcePartition[Any, Any]):
    """A Kafka partition polled at most every `interval` unless it is catching up; a
    resumed one stays silent for `hold` first (see `PacedKafkaSource`)."""

    def __init__(
        self,
        inner: StatefulSourcePartition[Any, Any],
        interval: timedelta,
        full: int,
        hold: timedelta = timedelta(0),
        heartbeat: Heartbeat | None = None,
    ):
        self._inner, self._interval, self._full = inner, interval, full
        self._heartbeat = heartbeat
        # Bytewax calls next_batch only once next_awake has passed: the hold is just a
        # later first wake-up, the same mechanism as the pacing.
        self._next: datetime | None = datetime.now(UTC) + hold if hold else None

    def next_batch(self) -> list[Any]:
        if self._heartbeat is not None:
            # Liveness: the worker came back to poll (it is not stuck in a step or a sink).
            self._heartbeat.beat()
        batch = list(self._inner.next_batch())
        busy = len(batch) >= self._full
        self._next = None if busy else datetime.now(UTC) + self._interval
        return batch

    def next_awake(self) -> datetime | None:
        return self._next

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class PacedKafkaSource(KafkaSource):
    """`KafkaSource` whose partitions are polled in batches every `interval`.

    Bytewax re-activates downstream steps for every non-empty poll; each activation of
    the timer step scans every armed key, so fewer, larger batches keep it cheap.

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
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._interval = interval
        self._resume_hold = resume_hold

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
        inner = super().build_part(step_id, for_part, resume_state)
        hold = self._resume_hold if resume_state is not None else timedelta(0)
        heartbeat = partition_heartbeat(step_id, for_part)
        return _PacedPartition(inner, self._interval, self._batch_size, hold, heartbeat)
