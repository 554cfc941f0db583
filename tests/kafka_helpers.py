"""Reading topics in tests: assign() all partitions from the start, poll with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from events.kafka import KafkaSettings


class TopicReader:
    """Collects every message of one topic (all partitions) as it arrives."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.topic = topic
        self.messages: list[Message] = []
        self._consumer = Consumer(
            settings.consumer(f"test-reader-{topic}", **{"enable.partition.eof": False})
        )
        metadata = self._consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])

    def poll(self, timeout: float = 0.2) -> None:
        for msg in self._consumer.consume(500, timeout):
            if msg.error() is None:
                self.messages.append(msg)

    async def wait_for(
        self, done: Callable[[list[Message]], bool], deadline_s: float = 20.0
    ) -> list[Message]:
        """Poll until `done(messages)` holds; fail with what arrived when the deadline passes."""
        end = time.monotonic() + deadline_s
        while True:
            await asyncio.to_thread(self.poll)
            if done(self.messages):
                return self.messages
            if time.monotonic() > end:
                raise AssertionError(
                    f"timed out on {self.topic}: {len(self.messages)} messages arrived"
                )

    async def wait_count(self, count: int, deadline_s: float = 20.0) -> list[Message]:
        return await self.wait_for(lambda msgs: len(msgs) >= count, deadline_s)

    async def settle(self, quiet_s: float = 1.0) -> list[Message]:
        """Keep reading until nothing new arrives for `quiet_s` (to prove nothing extra comes)."""
        seen = -1
        while seen != len(self.messages):
            seen = len(self.messages)
            end = time.monotonic() + quiet_s
            while time.monotonic() < end:
                await asyncio.to_thread(self.poll, 0.1)
        return self.messages

    def close(self) -> None:
        self._consumer.close()


def headers_of(msg: Message) -> dict[str, Any]:
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (msg.headers() or [])}
