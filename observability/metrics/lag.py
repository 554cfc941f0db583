"""Consumer lag from committed offsets against high watermarks.

Tansu caveat: Tansu reports a wrong "latest offset" (the start of the last batch + 1),
so on Tansu the high watermark, and therefore this lag, can be too low by up to one
batch. The figure is only right on real Kafka; use it for trends and alerts there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

# librdkafka's OFFSET_INVALID: the group has committed nothing for the partition yet.
OFFSET_INVALID = -1001


class TopicPartitionLike(Protocol):
    topic: str
    partition: int
    offset: int


class LagConsumer(Protocol):
    """The two confluent_kafka.Consumer calls the lag needs (a fake can provide them)."""

    def committed(self, partitions: list[Any], timeout: float = -1) -> list[Any]: ...

    def get_watermark_offsets(
        self, partition: Any, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]: ...


def consumer_lag(
    consumer: LagConsumer, partitions: Sequence[TopicPartitionLike], timeout: float = 5.0
) -> dict[tuple[str, int], int]:
    """Lag per (topic, partition) of the consumer's group: high watermark - committed offset.

    With nothing committed yet the whole retained partition counts (high - low). These
    are blocking broker round trips: from asyncio call it with `asyncio.to_thread`.
    """
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.committed(list(partitions), timeout=timeout):
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
        start = tp.offset if tp.offset >= 0 else low
        lags[(tp.topic, tp.partition)] = max(high - start, 0)
    return lags
