"""Operator tools over `taskflow.dlq`: list dead letters with their origin, replay them.

A dead letter keeps the original key, value and headers, plus the `dlq.*` origin headers
of `events.dlq`. Replaying re-publishes the original to its origin topic; every consumer
applies an event id at most once, so a replay (or two) never doubles an effect.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pydantic import TypeAdapter, ValidationError

from events import dlq
from events.kafka import KafkaSettings
from events.producer import AsyncProducer

# librdkafka wants a group id even for assign(); the tool never joins or commits. Under
# ACLs the operator's Kafka user needs Describe on this group and Read on the DLQ topic.
TOOL_GROUP = "taskflow-dlq-tool"
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_FATAL_READ = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DlqError(Exception):
    """A DLQ command cannot do what was asked (unknown id, incomplete read, failed publish)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message of the DLQ topic, with its origin decoded from the headers."""

    dlq_partition: int
    dlq_offset: int
    topic: str  # origin topic ("" if the headers do not say)
    partition: int | None
    offset: int | None
    consumer: str
    error: str
    when: datetime | None  # the DLQ message's timestamp: when it was dead-lettered
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def id(self) -> str:
        """Stable: the DLQ partition and offset never change for this message."""
        return f"{self.dlq_partition}:{self.dlq_offset}"

    @property
    def user(self) -> str | None:
        """The user the original event is about (its CloudEvent `userid`), if it says."""
        try:
            doc = orjson.loads(self.value or b"")
        except orjson.JSONDecodeError:
            return None
        user = doc.get("userid") if isinstance(doc, dict) else None
        return user if isinstance(user, str) else None

    def headers_of(self, name: str) -> str:
        """The last value of header `name` as text ("" if absent)."""
        values = [v for k, v in self.headers if k == name]
        return values[-1].decode("utf-8", "replace") if values else ""

    def moved_by(self, run: str) -> bool:
        """Whether purge run `run` wrote this copy (`deploy.dlq_purge`)."""
        return self.headers_of(dlq.PURGE_RUN) == run

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the message had before it was dead-lettered."""
        return [(k, v) for k, v in self.headers if not k.startswith("dlq.")]

    def summary(self) -> dict[str, Any]:
        """What `taskflow dlq list --json` prints for this dead letter."""
        return {
            "id": self.id,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "consumer": self.consumer,
            "error": self.error,
            "when": self.when.isoformat() if self.when else None,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "user": self.user,
        }

    def line(self) -> str:
        """One human line: id, when, origin, consumer, error."""
        when = self.when.isoformat(timespec="seconds") if self.when else "-"
        origin = f"{self.topic or '?'}[{_or_q(self.partition)}]@{_or_q(self.offset)}"
        error = " ".join(self.error.split())
        return f"{self.id}\t{when}\t{origin}\t{self.consumer or '-'}\t{error}"


@dataclass(frozen=True, slots=True)
class Replayed:
    """Where one dead letter was re-published."""

    letter: DeadLetter
    partition: int
    offset: int

    def line(self) -> str:
        return (
            f"replayed {self.letter.id} -> {self.letter.topic}[{self.partition}]@{self.offset}"
            f" (was {self.letter.topic}[{_or_q(self.letter.partition)}]"
            f"@{_or_q(self.letter.offset)})"
        )


class DeadLetterStore(Protocol):
    """Where the DLQ commands read and replay; the real one is `KafkaDeadLetterStore`."""

    def read(self) -> list[DeadLetter]: ...

    async def republish(self, letters: Sequence[DeadLetter]) -> list[Replayed]: ...


def _or_q(value: int | None) -> str:
    return "?" if value is None else str(value)


def _text(headers: dict[str, bytes], name: str) -> str:
    raw = headers.get(name)
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _int(headers: dict[str, bytes], name: str) -> int | None:
    try:
        return int(_text(headers, name))
    except ValueError:
        return None


def from_message(msg: Message) -> DeadLetter:
    """Decode one DLQ message (headers as librdkafka gives them)."""
    received = msg.headers() or []
    pairs = received.items() if isinstance(received, dict) else received
    headers = tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs if v is not None)
    named = dict(headers)
    kind, stamp = msg.timestamp()
    when = datetime.fromtimestamp(stamp / 1000, UTC) if kind and stamp >= 0 else None
    return DeadLetter(
        dlq_partition=int(msg.partition() or 0),
        dlq_offset=int(msg.offset() or 0),
        topic=_text(named, dlq.SOURCE_TOPIC),
        partition=_int(named, dlq.SOURCE_PARTITION),
        offset=_int(named, dlq.SOURCE_OFFSET),
        consumer=_text(named, dlq.CONSUMER),
        error=_text(named, dlq.ERROR),
        when=when,
        key=msg.key(),
        value=msg.value(),
        headers=headers,
    )


def parse_since(text: str, now: datetime) -> datetime:
    """`2h`, `30m`, `7d`, an ISO duration (`PT1H`) back from `now`, or an ISO instant
    (naive means UTC)."""
    compact = _DURATION.match(text.strip())
    if compact:
        return now - timedelta(**{_UNITS[compact.group(2)]: int(compact.group(1))})
    if text.strip().upper().startswith("P"):
        try:
            return now - TypeAdapter(timedelta).validate_python(text.strip())
        except ValidationError:
            pass
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give an ISO time (2026-01-15T12:00Z) or a duration (2h, PT30M)"
        ) from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def select(
    letters: Iterable[DeadLetter],
    topic: str | None = None,
    since: datetime | None = None,
    *,
    user: str | None = None,
) -> list[DeadLetter]:
    """Dead letters from origin `topic` (any if None) dead-lettered at or after `since`,
    about `user` (any if None; a letter whose value names no user matches by its key)."""
    return [
        d
        for d in letters
        if (topic is None or d.topic == topic)
        and (since is None or (d.when is not None and d.when >= since))
        and (user is None or user in (d.user, _key_text(d)))
    ]


def _key_text(letter: DeadLetter) -> str | None:
    return letter.key.decode("utf-8", "replace") if letter.key is not None else None


def pick(letters: Sequence[DeadLetter], ids: Sequence[str]) -> list[DeadLetter]:
    """The dead letters named by `ids`, in that order; refuses unknown ids (replays none)."""
    by_id = {d.id: d for d in letters}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise DlqError(f"no dead letter with id {', '.join(unknown)} (see `taskflow dlq list`)")
    return [by_id[i] for i in dict.fromkeys(ids)]


class KafkaDeadLetterStore:
    """Reads the whole DLQ topic with `assign()` (no consumer group) and re-publishes
    with the idempotent producer."""

    def __init__(self, settings: KafkaSettings, deadline_s: float = 30.0) -> None:
        self._settings = settings
        self._deadline_s = deadline_s

    @property
    def topic(self) -> str:
        return self._settings.topics.dlq

    def read(self) -> list[DeadLetter]:
        consumer = Consumer(self._settings.consumer(TOOL_GROUP, **{"enable.partition.eof": False}))
        try:
            return [from_message(m) for m in read_all(consumer, self.topic, self._deadline_s)]
        finally:
            consumer.close()

    async def republish(self, letters: Sequence[DeadLetter]) -> list[Replayed]:
        missing = [d.id for d in letters if not d.topic]
        if missing:
            raise DlqError(f"dead letters {', '.join(missing)} name no origin topic")
        producer = AsyncProducer(self._settings.producer())
        try:
            sent = await asyncio.gather(
                *(
                    producer.produce(d.topic, d.value, key=d.key, headers=d.original_headers())
                    for d in letters
                )
            )
        finally:
            await producer.close()
        return [
            Replayed(d, int(m.partition() or 0), int(m.offset() or 0))
            for d, m in zip(letters, sent, strict=True)
        ]


def read_all(consumer: Consumer, topic: str, deadline_s: float) -> list[Message]:
    """Every message from the start of each partition to its end.

    Tansu reports a high watermark that can stop short of the real end (tech-notes.md),
    so reaching it is not the end: read on until a poll comes back empty, within a deadline.
    """
    deadline = time.monotonic() + deadline_s
    meta = consumer.list_topics(topic, timeout=10)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise DlqError(f"topic {topic} does not exist on {len(meta.brokers)} broker(s)")
    ends: dict[int, int] = {}
    starts: list[TopicPartition] = []
    for p in meta.topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ends[p] = high
            starts.append(TopicPartition(topic, p, low))
    if not starts:
        return []
    consumer.assign(starts)
    messages: list[Message] = []
    while True:
        batch = consumer.consume(500, 0.5)
        for msg in batch:
            error = msg.error()
            if error is None:
                messages.append(msg)
            elif error.fatal() or error.code() in _FATAL_READ:
                raise DlqError(f"reading {topic}: {error.str()}")
        # The consumer's position (next offset to fetch) also steps over control records.
        at = {tp.partition: tp.offset for tp in consumer.position(starts)}
        if not batch and all(at[p] >= end for p, end in ends.items()):
            return messages
        if time.monotonic() > deadline:
            behind = {p: (at[p], end) for p, end in ends.items() if at[p] < end}
            raise DlqError(
                f"read {len(messages)} dead letters from {topic} but did not reach the end "
                f"within {deadline_s:.0f}s (partition: (next, end) {behind})"
            )
