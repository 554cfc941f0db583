"""Every consumer's decode step, fed Hypothesis-made messages: it never raises, and what it
cannot use is routed to the DLQ (or, for the hub's broadcast feed, skipped). No I/O."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit_store.records import AuditRecord, Origin, Poison, to_record
from events import dlq
from events.kafka import KafkaSettings
from events.payloads import TaskState
from notify_ws.hub.feed import Feed
from notify_ws.hub.hub import Hub
from notify_ws.metrics import Metrics
from notify_ws.settings import NotifySettings
from notify_ws.worker.consumer import Worker
from notify_ws.worker.processor import Result
from pipelines.audit import to_item_traced
from pipelines.reminders.codec import DeadLetter, dead_letter_message, decode_message
from pipelines.reminders.logic import TaskInput
from tests.fuzz.messages import (
    TEMPLATES,
    Headers,
    good_event,
    headers,
    is_undecodable,
    json_values,
    keys,
    mutated_events,
    task_created,
    values,
)

NOTIFICATION = next(t for t in TEMPLATES if t["type"] == "notification.created")


def examples(count: int) -> int:
    """`count`, or more when the loaded profile asks for more (`taskflow-deep`)."""
    return max(count, settings().max_examples)


FUZZ = settings(
    max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TOPIC = "taskflow.tasks"


@dataclass
class Raw:
    """confluent-kafka's Message, as the worker and the hub feed read it."""

    value_: bytes | None
    headers_: Headers | None
    key_: bytes | None = None
    offset_: int = 0
    partition_: int = 0
    topic_: str = TOPIC

    def error(self) -> None:
        return None

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> Headers | None:
        return self.headers_

    def key(self) -> bytes | None:
        return self.key_

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


def bytewax_message(value: bytes | None, hdrs: Headers, key: bytes | None, offset: int = 7) -> Any:
    return KafkaSourceMessage(
        key, value, topic=TOPIC, headers=hdrs, offset=offset, partition=1, timestamp=(1, 1)
    )


# --- audit dataflow: to_record / to_item_traced --------------------------------------------


@FUZZ
@given(values, headers, keys)
def test_audit_decode_keeps_or_poisons(
    value: bytes | None, hdrs: Headers, key: bytes | None
) -> None:
    item = to_item_traced(bytewax_message(value, hdrs, key))
    if isinstance(item, Poison):
        assert item.origin == Origin(TOPIC, 1, 7, 1) and item.value == value and item.key == key
        assert item.error
    else:
        assert isinstance(item, AuditRecord) and not is_undecodable(value)
        assert item.occurred_at.utcoffset() is not None


@FUZZ
@given(st.binary(max_size=200) | st.none(), headers)
def test_audit_poisons_every_undecodable_value(value: bytes | None, hdrs: Headers) -> None:
    item = to_record(Origin(TOPIC, 0, 0), None, value, hdrs)
    assert isinstance(item, Poison) == is_undecodable(value) or b"\\u0000" in (value or b"")


# --- reminder dataflow: decode_message and its dead letter ----------------------------------


@FUZZ
@given(values, headers, keys)
def test_reminders_decode_is_a_task_or_a_dead_letter(
    value: bytes | None, hdrs: Headers, key: bytes | None
) -> None:
    msg = bytewax_message(value, hdrs, key)
    item = decode_message(msg)
    if isinstance(item, DeadLetter):
        out = dead_letter_message("taskflow.dlq", item)
        got = dict(out.headers)
        assert out.value == value and out.key == key and out.topic == "taskflow.dlq"
        assert (got[dlq.SOURCE_TOPIC], got[dlq.SOURCE_PARTITION], got[dlq.SOURCE_OFFSET]) == (
            TOPIC.encode(), b"1", b"7",
        )  # fmt: skip
    else:
        assert isinstance(item, TaskInput) and isinstance(item.task, TaskState)


# --- notification worker: the batch handler with hand-written fakes ------------------------


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, dict[str, bytes]]] = []

    def produce(self, topic: str, value: bytes | None, key: Any = None, headers: Any = None) -> Any:
        self.sent.append((topic, value, {k: v for k, v in headers or [] if isinstance(v, bytes)}))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class AcceptAll:
    """The processor after decoding: takes every decoded event, makes no notification."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def process(self, items: Any) -> Result:
        self.seen += items
        return Result([], [], len(items))


class NoPublisher:
    async def created(self, notes: Any) -> None:
        return None

    async def flush_marks(self) -> None:
        return None


@dataclass
class Commits:
    offsets: list[Any] = field(default_factory=list)

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        self.offsets += offsets


@settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(values, headers | st.none(), keys), min_size=1, max_size=8))
def test_notification_worker_dead_letters_exactly_the_undecodable(
    batch: list[tuple[bytes | None, Headers | None, bytes | None]],
) -> None:
    batch = [*batch, (good_event(task_created()), None, b"k")]
    msgs = [Raw(v, h, k, offset_=i) for i, (v, h, k) in enumerate(batch)]
    producer, processor, commits = FakeProducer(), AcceptAll(), Commits()
    kafka = KafkaSettings(bootstrap="127.0.0.1:9", topic_namespace="")
    worker = Worker(
        kafka, NotifySettings(), processor, NoPublisher(), producer, Metrics(),  # type: ignore[arg-type]
        on_created=lambda: None,
    )  # fmt: skip

    asyncio.run(worker._handle(commits, msgs, asyncio.Event()))

    bad = [m for m in msgs if is_undecodable(m.value())]
    assert [value for _, value, _ in producer.sent] == [m.value() for m in bad]
    assert [h[dlq.SOURCE_OFFSET] for _, _, h in producer.sent] == [
        str(m.offset()).encode() for m in bad
    ]
    assert {t for t, _, _ in producer.sent} <= {kafka.topics.dlq}
    assert len(processor.seen) == len(msgs) - len(bad) >= 1
    assert [(tp.topic, tp.offset) for tp in commits.offsets] == [(TOPIC, len(msgs))]


# --- the hub's broadcast feed: skips what it cannot forward --------------------------------


@st.composite
def notifications_with_a_wrong_field(draw: st.DrawFn) -> bytes:
    """notification.created whose user_id, notification or one of its fields is any JSON."""
    doc = orjson.loads(orjson.dumps(NOTIFICATION))
    data = doc["data"]
    if draw(st.booleans()):
        data[draw(st.sampled_from(["user_id", "notification"]))] = draw(json_values)
    else:
        data["notification"][draw(st.sampled_from(sorted(data["notification"])))] = draw(
            json_values
        )
    return orjson.dumps(doc)


@FUZZ
@given(values | mutated_events("notification.created") | notifications_with_a_wrong_field(),
       headers | st.none())  # fmt: skip
def test_hub_feed_skips_what_it_cannot_forward(value: bytes | None, hdrs: Headers | None) -> None:
    metrics = Metrics()
    feed = Feed(KafkaSettings(bootstrap="127.0.0.1:9"), Hub(metrics), metrics, 10)
    feed._forward(Raw(value, hdrs))  # no connected user: nothing to send, nothing to raise
