"""The AsyncAPI 3.0 document of the Kafka contract, built from the payload models and codec.

Pure: `build_document()` returns plain JSON-ready data and does no I/O. The committed copy
is `docs/api/asyncapi.yaml`, rewritten by `python -m tests.contract`; a unit test fails when
the two differ. Payload schemas are the pydantic models' own JSON schemas (validation mode:
what a consumer accepts), so a field added to `events.payloads` shows up here by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic.json_schema import models_json_schema

from events import codec, dlq, topics
from events.payloads import (
    ALL_PAYLOADS,
    TASK_EVENTS,
    NotificationCreated,
    NotificationDelivered,
    NotificationFailed,
    Payload,
    ReminderDigest,
    TaskReminder,
    UserErased,
    UserErasureApplied,
)

ASYNCAPI_VERSION = "3.0.0"
CONTRACT_VERSION = "1.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
SCHEMAS = "#/components/schemas/"
TRACEPARENT_PATTERN = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


@dataclass(frozen=True, slots=True)
class Channel:
    """One topic: its address, what its key holds, and the event types it carries."""

    name: str
    address: str
    title: str
    description: str
    key: dict[str, Any]
    payloads: tuple[type[Payload], ...]
    # Messages keyed otherwise than the channel's usual key (`user.erased`: the user id).
    keys: tuple[tuple[type[Payload], dict[str, Any]], ...] = ()

    def key_of(self, payload: type[Payload]) -> dict[str, Any]:
        """The Kafka key schema of `payload` on this channel."""
        return dict(self.keys).get(payload, self.key)


@dataclass(frozen=True, slots=True)
class Operation:
    """One process sending to or receiving from one topic."""

    name: str
    action: Literal["send", "receive"]
    channel: str
    summary: str
    payloads: tuple[type[Payload], ...] | None = None  # None: every message of the channel
    group: str | None = None


_UUID = {"type": "string", "format": "uuid"}
_USER_ID = {"type": "string", "description": "The user id (the JWT `sub`)."}
# `user.erasure.applied` is on two channels but is one message: one key description.
_ERASURE_KEYS = ((UserErasureApplied, {**_USER_ID, "description": "The erased user's id."}),)

CHANNELS: tuple[Channel, ...] = (
    Channel(
        "tasks",
        topics.TASKS,
        "Task changes",
        "Every accepted change of a task, published by the task service's outbox relay "
        "(idempotent producer, acks=all) after the change's transaction commits; one event "
        "per change. `task.snapshot` republishes a task's live state to rebuild consumers' "
        "state and is not a change. `user.erased` (keyed by the user id, so it is not "
        "ordered with that user's task events) is written in the transaction that deleted "
        "the user's tasks; a consumer keeps an erased-user record and drops any later event "
        "of that user.",
        {**_UUID, "description": "The task id: one task's events stay in order."},
        (*TASK_EVENTS, UserErased),
        keys=((UserErased, {**_USER_ID, "description": "The erased user's id."}),),
    ),
    Channel(
        "reminders",
        topics.REMINDERS,
        "Reminders that fired",
        "Reminders and per-user digests, published by the reminder dataflow. Event ids are "
        "deterministic (`reminder_id`, `digest_id`), so a re-fired reminder is a duplicate. "
        "`user.erasure.applied` says the reminder flow finished its part of an erasure.",
        {**_USER_ID, "description": "The user id: one user's reminders stay in order."},
        (TaskReminder, ReminderDigest, UserErasureApplied),
        keys=_ERASURE_KEYS,
    ),
    Channel(
        "notifications",
        topics.NOTIFICATIONS,
        "Notifications and their delivery outcomes",
        "In-app notifications as the notification worker stored them (`seq` is per user, "
        "strictly increasing, gap-free) and the outcome of each channel's delivery. "
        "`user.erasure.applied` says the notification service finished its part of an "
        "erasure.",
        {**_USER_ID, "description": "The user id: one user's notifications stay in order."},
        (NotificationCreated, NotificationDelivered, NotificationFailed, UserErasureApplied),
        keys=_ERASURE_KEYS,
    ),
)

_DLQ_CONSUMERS = ("notify-worker", "pipelines.audit", "pipelines.reminders")

OPERATIONS: tuple[Operation, ...] = (
    Operation("taskServiceSendsTasks", "send", "tasks", "The task service's outbox relay."),
    Operation(
        "notifyWorkerReceivesTasks",
        "receive",
        "tasks",
        "The notification worker decides and stores notifications.",
        group="notify-worker",
    ),
    Operation(
        "reminderFlowReceivesTasks", "receive", "tasks", "The reminder dataflow arms timers."
    ),
    Operation("auditFlowReceivesTasks", "receive", "tasks", "The audit dataflow records it."),
    Operation("reminderFlowSendsReminders", "send", "reminders", "The reminder dataflow."),
    Operation(
        "notifyWorkerReceivesReminders",
        "receive",
        "reminders",
        "The notification worker notifies the user.",
        group="notify-worker",
    ),
    Operation(
        "auditFlowReceivesReminders", "receive", "reminders", "The audit dataflow records it."
    ),
    Operation(
        "notifyWorkerSendsNotifications",
        "send",
        "notifications",
        "The notification worker, after its transaction commits.",
    ),
    Operation(
        "hubReceivesNotifications",
        "receive",
        "notifications",
        "Every WebSocket hub node reads every partition (assign, no group) and forwards "
        "`notification.created` to the user's sockets.",
        payloads=(NotificationCreated,),
    ),
    Operation(
        "auditFlowReceivesNotifications",
        "receive",
        "notifications",
        "The audit dataflow records it.",
    ),
    Operation(
        "consumersSendDeadLetters",
        "send",
        "dlq",
        "Any consumer, for a message it could not decode or process after its retries "
        f"(consumers: {', '.join(_DLQ_CONSUMERS)}).",
    ),
)


# For the payload classes without a docstring of their own.
_SUMMARIES = {
    "task.created": "A task was created; `data` is the task.",
    "task.updated": "A task changed; `data` is the task after it, `changed` names the fields.",
    "task.reopened": "A completed task was reopened.",
    "task.snoozed": "A task's next reminder was moved (`snoozed_until`).",
    "task.deleted": "A task was deleted; `data` is its last state.",
    "notification.created": "A notification was stored for a user (`seq` is gap-free).",
    "notification.delivered": "A channel delivered a notification.",
    "notification.failed": "A channel gave up on a notification after its attempts.",
    "user.erased": "A user was erased; every service applies it to its own data.",
    "user.erasure.applied": "A service finished (or deferred) its part of an erasure.",
}


def message_key(payload: type[Payload]) -> str:
    """The component name of a (type, version): `task.created` v1 -> `taskCreatedV1`."""
    words = payload.event_type.replace("_", ".").split(".")
    camel = words[0] + "".join(word[:1].upper() + word[1:] for word in words[1:])
    return f"{camel}V{payload.schema_version}"


def _payload_schemas() -> dict[str, Any]:
    """Every payload model's JSON schema, nested models included, keyed by model name."""
    _, defs = models_json_schema(
        [(cls, "validation") for cls in ALL_PAYLOADS], ref_template=SCHEMAS + "{model}"
    )
    return dict(sorted(defs.get("$defs", {}).items()))


def _cloud_event_schema() -> dict[str, Any]:
    """The structured-mode envelope `events.codec.to_dict` writes."""
    return {
        "type": "object",
        "description": (
            "CloudEvents 1.0, structured content mode (`application/cloudevents+json`). "
            "Consumers require `id`, `source`, `specversion` and `type`, a `data` object, "
            "and a `time` with an offset; unknown attributes are ignored."
        ),
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "subject",
            "datacontenttype",
            "dataversion",
            "userid",
            "data",
        ],
        "properties": {
            "specversion": {"type": "string", "const": codec.SPEC_VERSION},
            "id": {**_UUID, "description": "Unique event id (UUIDv7 unless deterministic)."},
            "source": {
                "type": "string",
                "description": "The producing service, e.g. `/taskflow/task-service`, "
                "`/taskflow/reminders`, `/taskflow/notify-service`.",
            },
            "type": {"type": "string", "description": "The event type (`task.created`, ...)."},
            "time": {"type": "string", "format": "date-time"},
            "subject": {
                "type": "string",
                "description": "The task id (the notification id for a notification "
                "without a task, the user id for a digest and for `user.erased` and "
                "`user.erasure.applied`).",
            },
            "datacontenttype": {"type": "string", "const": codec.DATA_CONTENT_TYPE},
            "dataversion": {
                "type": "string",
                "description": "Extension: the payload schema version (`1`).",
            },
            "userid": {**_USER_ID, "description": "Extension: the user the event is about."},
            "traceparent": {
                "type": "string",
                "pattern": TRACEPARENT_PATTERN,
                "description": "Extension: W3C trace context of the producing span.",
            },
            "tracestate": {"type": "string", "description": "Extension: W3C tracestate."},
            "data": {"type": "object", "description": "The typed payload of `type`."},
        },
    }


def _event_headers_schema() -> dict[str, Any]:
    """The headers every event message carries (its `ce_type` const is per message)."""
    return {
        "type": "object",
        "description": "Kafka headers (UTF-8 strings). Of the CloudEvents binary-mode headers "
        "only `ce_type` is sent (the value is the structured event): it repeats `type`, so a "
        "consumer can skip a message without parsing its value.",
        "required": ["ce_type"],
        "properties": {
            "ce_type": {"type": "string", "description": "The event type."},
            "traceparent": {
                "type": "string",
                "pattern": TRACEPARENT_PATTERN,
                "description": "W3C trace context of the producing span (OTEL_PROPAGATORS).",
            },
            "tracestate": {"type": "string", "description": "W3C tracestate, when there is one."},
            "baggage": {"type": "string", "description": "W3C baggage, when there is any."},
        },
    }


def _event_headers(event_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "allOf": [
            {"$ref": SCHEMAS + "EventHeaders"},
            {"type": "object", "properties": {"ce_type": {"type": "string", "const": event_type}}},
        ],
    }


def _dlq_headers() -> dict[str, Any]:
    described: dict[str, dict[str, Any]] = {
        dlq.SOURCE_TOPIC: {"description": "Topic the message was read from."},
        dlq.SOURCE_PARTITION: {"pattern": "^[0-9]+$", "description": "Its partition."},
        dlq.SOURCE_OFFSET: {"pattern": "^[0-9]+$", "description": "Its offset."},
        dlq.CONSUMER: {"description": f"The consumer that gave up: {', '.join(_DLQ_CONSUMERS)}."},
        dlq.ERROR: {"maxLength": 1000, "description": "Why it failed (truncated)."},
    }
    return {
        "type": "object",
        "description": "The original message's headers (`ce_type`, trace context, ...) "
        "followed by the origin headers.",
        "required": list(dlq.DLQ_HEADERS),
        "properties": {
            name: {"type": "string", **described.get(name, {})} for name in dlq.DLQ_HEADERS
        },
        "additionalProperties": {"type": "string"},
    }


def _kafka_key(schema: dict[str, Any]) -> dict[str, Any]:
    return {"kafka": {"key": schema, "bindingVersion": KAFKA_BINDING_VERSION}}


def _message(payload: type[Payload], key: dict[str, Any]) -> dict[str, Any]:
    doc = (payload.__doc__ or payload.event_type).strip()
    data_ref = {"$ref": SCHEMAS + payload.__name__}
    message: dict[str, Any] = {
        "name": payload.event_type,
        "title": f"{payload.event_type} v{payload.schema_version}",
        "summary": _SUMMARIES.get(payload.event_type) or doc.splitlines()[0],
        "contentType": codec.CONTENT_TYPE,
        "headers": _event_headers(payload.event_type),
        "payload": {
            "allOf": [
                {"$ref": SCHEMAS + "CloudEvent"},
                {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "const": payload.event_type},
                        "dataversion": {"type": "string", "const": str(payload.schema_version)},
                        "data": data_ref,
                    },
                },
            ]
        },
        "correlationId": {"location": "$message.payload#/id"},
        "bindings": _kafka_key(key),
    }
    return message


def _dead_letter() -> dict[str, Any]:
    return {
        "name": "dead-letter",
        "title": "Dead letter",
        "summary": "A message a consumer could not decode or process after its retries.",
        "description": "The original key and value, unchanged (value may be any bytes, "
        "not necessarily a CloudEvent); its headers plus the origin headers.",
        "headers": _dlq_headers(),
        "payload": {"description": "The original message value, byte for byte."},
        "bindings": _kafka_key({"description": "The original message key, unchanged."}),
    }


def _channel_doc(channel: Channel) -> dict[str, Any]:
    return {
        "address": channel.address,
        "title": channel.title,
        "description": channel.description,
        "messages": {
            message_key(p): {"$ref": f"#/components/messages/{message_key(p)}"}
            for p in channel.payloads
        },
        "bindings": {"kafka": {"topic": channel.address, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _dlq_channel() -> dict[str, Any]:
    return {
        "address": topics.DLQ,
        "title": "Dead letters",
        "description": "Messages no consumer could handle, with their origin; processing "
        "of the source topic goes on. Key: the original key.",
        "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
        "bindings": {"kafka": {"topic": topics.DLQ, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _operation_doc(op: Operation, channels: dict[str, Channel]) -> dict[str, Any]:
    if op.channel == "dlq":
        names = ["deadLetter"]
    else:
        names = [message_key(p) for p in (op.payloads or channels[op.channel].payloads)]
    doc: dict[str, Any] = {
        "action": op.action,
        "channel": {"$ref": f"#/channels/{op.channel}"},
        "summary": op.summary,
        "messages": [{"$ref": f"#/channels/{op.channel}/messages/{name}"} for name in names],
    }
    if op.group is not None:
        doc["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [op.group]},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        }
    return doc


def _servers() -> dict[str, Any]:
    return {
        "local": {
            "host": "127.0.0.1:9092",
            "protocol": "kafka",
            "description": "The local Kafka-protocol broker of `taskflow up` / `taskflow broker`.",
        },
        "production": {
            "host": "{bootstrap}",
            "protocol": "kafka-secure",
            "description": "A Kafka cluster (`TASKFLOW_KAFKA_BOOTSTRAP`), TLS and SASL "
            "through `TASKFLOW_KAFKA_*`. Topic names take `TASKFLOW_KAFKA_TOPIC_NAMESPACE` "
            "as a prefix.",
            "variables": {"bootstrap": {"default": "kafka:9093"}},
            "security": [
                {"$ref": "#/components/securitySchemes/scramSha512"},
                {"$ref": "#/components/securitySchemes/scramSha256"},
                {"$ref": "#/components/securitySchemes/plain"},
            ],
        },
    }


def build_document() -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document as JSON-ready data (deterministic order)."""
    channels = {c.name: c for c in CHANNELS}
    messages: dict[str, Any] = {}
    for channel in CHANNELS:
        for payload in channel.payloads:
            # A type on several channels (`user.erasure.applied`) is one message component:
            # its key must be the same on each (a unit test checks it).
            messages[message_key(payload)] = _message(payload, channel.key_of(payload))
    messages["deadLetter"] = _dead_letter()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "TaskFlow events",
            "version": CONTRACT_VERSION,
            "description": "The Kafka contract of TaskFlow: topics, keys, headers and "
            "CloudEvents payloads. Generated from `events` (payloads, codec, topics, dlq) "
            "by `events.asyncapi`; v1 only ever adds fields, and consumers ignore unknown "
            "ones. A consumer applies an event id at most once and ignores a task event "
            "whose `data.version` is older than what it already applied.",
        },
        "defaultContentType": codec.CONTENT_TYPE,
        "servers": _servers(),
        "channels": {
            **{c.name: _channel_doc(c) for c in CHANNELS},
            "dlq": _dlq_channel(),
        },
        "operations": {op.name: _operation_doc(op, channels) for op in OPERATIONS},
        "components": {
            "schemas": {
                "CloudEvent": _cloud_event_schema(),
                "EventHeaders": _event_headers_schema(),
                **_payload_schemas(),
            },
            "messages": messages,
            "securitySchemes": {
                "scramSha512": {"type": "scramSha512", "description": "SASL/SCRAM-SHA-512."},
                "scramSha256": {"type": "scramSha256", "description": "SASL/SCRAM-SHA-256."},
                "plain": {"type": "plain", "description": "SASL/PLAIN (over TLS)."},
            },
        },
    }


def registered_types() -> frozenset[tuple[str, int]]:
    """Every (type, version) the codec decodes."""
    return frozenset((cls.event_type, cls.schema_version) for cls in ALL_PAYLOADS)
