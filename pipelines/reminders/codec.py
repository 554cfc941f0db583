"""The reminder flow's messages: task events in, reminders/digests and dead letters out,
and the log rows the read model keeps of what the flow did."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage, KafkaSourceMessage

from events.codec import Envelope, decode, encode
from events.dlq import dlq_headers
from events.errors import DecodeError
from events.payloads import DigestItem, ReminderDigest, TaskReminder, TaskState, UserErased
from pipelines.reminders.erasure import ErasureInput
from pipelines.reminders.logic import TaskInput
from pipelines.reminders.trace import TRACEPARENT, fire_headers, header_value
from reminders.domain.digest import Delivery, Digest
from reminders.domain.timers import Fired
from reminders.ports import LogEntry, SentDelivery

log = logging.getLogger(__name__)

SOURCE = "/taskflow/reminders"
CONSUMER = "pipelines.reminders"
Raw = KafkaSourceMessage[bytes | None, bytes | None]
SinkMessage = KafkaSinkMessage[bytes | None, bytes | None]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the flow cannot use, with where it came from and why."""

    message: Raw
    error: str


def decode_message(
    msg: Raw | KafkaError[bytes | None, bytes | None],
) -> TaskInput | ErasureInput | DeadLetter | None:
    """A task event, a `user.erased`, a dead letter, or None for a consumer error report
    (logged). Any other event type is a dead letter."""
    if isinstance(msg, KafkaError):
        log.warning("kafka consumer error: %s", msg.err)
        return None
    try:
        envelope = decode(msg.value)
    except DecodeError as exc:
        return DeadLetter(msg, str(exc))
    traceparent = header_value(msg.headers, TRACEPARENT) or envelope.traceparent
    if isinstance(envelope.data, UserErased):
        return ErasureInput(envelope.data.user_id, envelope.data, traceparent)
    if not isinstance(envelope.data, TaskState):
        return DeadLetter(msg, f"{envelope.type} is not a task event")
    return TaskInput(str(envelope.data.id), envelope.type, envelope.data, traceparent)


def dead_letter_message(dlq_topic: str, letter: DeadLetter) -> SinkMessage:
    """The original key, value and headers, plus the origin headers of `events.dlq`."""
    msg = letter.message
    origin = dlq_headers(
        msg.topic or "", msg.partition or 0, msg.offset or 0, CONSUMER, letter.error
    )
    names = {name for name, _ in origin}
    kept = [(k, v) for k, v in msg.headers if k not in names]
    return KafkaSinkMessage(msg.key, msg.value, topic=dlq_topic, headers=kept + origin)


def dead_letter_log(letter: DeadLetter) -> LogEntry:
    msg = letter.message
    return LogEntry(f"dlq/{msg.topic}/{msg.partition}/{msg.offset}", "dlq")


def _reminder(item: Fired) -> TaskReminder:
    return TaskReminder(
        reminder_id=item.reminder_id,
        task_id=item.task_id,
        user_id=item.user_id,
        title=item.title,
        remind_at=item.remind_at,
        due_at=item.due_at,
        kind=item.kind,
        task_version=item.task_version,
        fired_at=item.fired_at,
    )


def _digest(digest: Digest) -> ReminderDigest:
    items = tuple(
        DigestItem(
            reminder_id=i.reminder_id,
            task_id=i.task_id,
            title=i.title,
            remind_at=i.remind_at,
            due_at=i.due_at,
            kind="missed" if i.missed else i.kind,
        )
        for i in digest.items
    )
    return ReminderDigest(
        digest_id=digest.digest_id,
        user_id=digest.user_id,
        window_start=digest.window_start,
        window_end=digest.window_end,
        items=items,
    )


def delivery_message(topic: str, delivery: Delivery, now: datetime) -> SinkMessage:
    """The CloudEvent for a reminder or digest; its event id is the deterministic id."""
    if isinstance(delivery, Fired):
        payload: TaskReminder | ReminderDigest = _reminder(delivery)
        event_id, subject, parents = delivery.reminder_id, delivery.task_id, [delivery.traceparent]
        attrs = {"taskflow.reminder_id": event_id, "taskflow.task_id": subject}
    else:
        payload = _digest(delivery)
        event_id, subject = delivery.digest_id, delivery.user_id
        parents = [item.traceparent for item in delivery.items]
        attrs = {"taskflow.digest_id": event_id, "taskflow.items": str(len(delivery.items))}
    carrier = fire_headers(f"{payload.event_type} send", parents, attrs)
    envelope = Envelope(
        data=payload,
        source=SOURCE,
        subject=subject,
        user_id=delivery.user_id,
        id=event_id,
        time=now,
        traceparent=carrier.get(TRACEPARENT),
        tracestate=carrier.get("tracestate"),
    )
    headers = [(k, v.encode()) for k, v in carrier.items()]
    headers.append(("ce_type", payload.event_type.encode()))
    return KafkaSinkMessage(
        delivery.user_id.encode(), encode(envelope), topic=topic, headers=headers
    )


def delivery_log(delivery: Delivery) -> list[LogEntry]:
    """Metric log rows: lateness of reminders sent on their own, counts of digests and misses."""
    if isinstance(delivery, Fired):
        return [_fired_row(delivery.reminder_id, delivery.remind_at, delivery.fired_at,
                           delivery.user_id, delivery.task_id)]  # fmt: skip
    items = ((i.reminder_id, i.missed, i.task_id) for i in delivery.items)
    return _digest_rows(delivery.digest_id, delivery.user_id, items)


def resent_log(sent: SentDelivery) -> list[LogEntry]:
    """The log rows of a message sent again from its record: the same rows `delivery_log`
    gave its first send, which a crash may have kept from the read model (rows are keyed
    by id, so rows already there count nothing twice)."""
    payload = decode(sent.value).data
    if isinstance(payload, TaskReminder):
        return [_fired_row(payload.reminder_id, payload.remind_at, payload.fired_at,
                           sent.user_id, str(payload.task_id))]  # fmt: skip
    if not isinstance(payload, ReminderDigest):
        raise TypeError(f"a recorded {type(payload).__name__} is no reminder or digest")
    items = ((i.reminder_id, i.kind == "missed", str(i.task_id)) for i in payload.items)
    return _digest_rows(payload.digest_id, sent.user_id, items)


def _fired_row(
    reminder_id: str, remind_at: datetime, fired_at: datetime, user: str, task: str
) -> LogEntry:
    lateness = (fired_at - remind_at).total_seconds()
    return LogEntry(reminder_id, "fired", max(lateness, 0.0), user, task)


def _digest_rows(
    digest_id: str, user: str, items: Iterable[tuple[str, bool, str]]
) -> list[LogEntry]:
    """The digest's row, then one per item (reminder id, missed, task id)."""
    rows = [LogEntry(digest_id, "digest", None, user)]
    rows += [LogEntry(rid, "missed" if missed else "held", None, user, task)
             for rid, missed, task in items]  # fmt: skip
    return rows
