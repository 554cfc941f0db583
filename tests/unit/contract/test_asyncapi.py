"""The committed AsyncAPI document is what `events.asyncapi` generates, it is shaped as
AsyncAPI 3.0, and what the codec really writes matches its schemas."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # via schemathesis (test extra)
import orjson
import pytest

from events import codec, topics
from events.asyncapi import CHANNELS, message_key, registered_types
from events.dlq import DLQ_HEADERS, dlq_headers
from events.payloads import (
    ALL_PAYLOADS,
    DigestItem,
    NotificationBody,
    NotificationCreated,
    NotificationDelivered,
    NotificationFailed,
    Payload,
    ReminderDigest,
    ReminderSpec,
    TaskCreated,
    TaskReminder,
    TaskState,
    TaskUpdated,
    UserErased,
    UserErasureApplied,
)
from tests.contract.documents import (
    ASYNCAPI_FILE,
    REGENERATE,
    asyncapi_document,
    differences,
    load_yaml,
)

NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
TASK_ID = uuid.UUID("0190f2b4-0000-7000-8000-000000000001")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document()


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_committed_asyncapi_is_what_the_events_package_generates(
    document: dict[str, Any],
) -> None:
    assert ASYNCAPI_FILE.exists(), f"{ASYNCAPI_FILE} is missing: run `{REGENERATE}`"
    committed = load_yaml(ASYNCAPI_FILE)
    assert committed == document, (
        f"docs/api/asyncapi.yaml differs from events.asyncapi.build_document(): run "
        f"`{REGENERATE}` and commit docs/api/ (v1 may only add: never rename or remove); "
        "differing: " + ", ".join(differences(committed, document))
    )


def test_it_is_shaped_as_asyncapi_3(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    components = document["components"]
    for name, channel in document["channels"].items():
        assert channel["address"] and channel["messages"], name
        for ref in channel["messages"].values():
            message = resolve(document, ref["$ref"])
            assert "payload" in message and "headers" in message, ref
            assert message["bindings"]["kafka"]["key"] is not None, ref
    for name, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel_ref = operation["channel"]["$ref"]
        resolve(document, channel_ref)
        for ref in operation["messages"]:
            # An operation's messages must be messages of its own channel.
            assert ref["$ref"].startswith(channel_ref + "/messages/"), (name, ref)
            resolve(document, ref["$ref"])
    for schema in components["schemas"].values():
        for ref in _refs(schema):
            resolve(document, ref)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_every_registered_type_and_version_is_on_a_channel(
    document: dict[str, Any],
) -> None:
    on_channels = {(p.event_type, p.schema_version) for c in CHANNELS for p in c.payloads}
    assert on_channels == registered_types(), (
        "every payload in events.payloads.ALL_PAYLOADS needs its topic in events.asyncapi.CHANNELS"
    )
    for event_type, version in registered_types():
        assert codec.payload_type(event_type, version)  # the codec decodes it
    messages = document["components"]["messages"]
    named = {
        (m["name"], int(m["payload"]["allOf"][1]["properties"]["dataversion"]["const"]))
        for m in messages.values()
        if m["name"] != "dead-letter"
    }
    assert named == registered_types()


def test_only_erasure_outcomes_travel_on_more_than_one_channel() -> None:
    # Each service publishes its `user.erasure.applied` on the topic it produces to.
    channels_of: dict[type[Payload], list[str]] = {}
    for channel in CHANNELS:
        for payload in channel.payloads:
            channels_of.setdefault(payload, []).append(channel.name)
    shared = {p: names for p, names in channels_of.items() if len(names) > 1}
    assert shared == {UserErasureApplied: ["reminders", "notifications"]}


def test_a_type_on_several_channels_has_one_key(document: dict[str, Any]) -> None:
    # One message component per (type, version): its key must hold on every channel.
    for payload in ALL_PAYLOADS:
        keys = [c.key_of(payload) for c in CHANNELS if payload in c.payloads]
        assert keys and all(key == keys[0] for key in keys), payload.event_type
        binding = document["components"]["messages"][message_key(payload)]["bindings"]
        assert binding["kafka"]["key"] == keys[0], payload.event_type


def test_user_erased_is_keyed_by_the_user_on_the_task_topic(document: dict[str, Any]) -> None:
    tasks = document["channels"]["tasks"]
    assert tasks["address"] == topics.TASKS
    assert message_key(UserErased) in tasks["messages"]
    erased_key = document["components"]["messages"][message_key(UserErased)]["bindings"]
    assert erased_key["kafka"]["key"]["description"] == "The erased user's id."
    created = document["components"]["messages"][message_key(TaskCreated)]["bindings"]
    assert created["kafka"]["key"]["format"] == "uuid"  # task events stay keyed by task
    for name in ("reminders", "notifications"):
        assert message_key(UserErasureApplied) in document["channels"][name]["messages"]


def test_every_topic_is_a_channel(document: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(topics.Topics().all())


def _task(**extra: Any) -> dict[str, Any]:
    return {
        "id": TASK_ID, "user_id": "alice", "title": "Water the plants", "due_at": NOW,
        "reminders": (ReminderSpec(before=timedelta(minutes=15)), ReminderSpec(at=NOW)),
        "tags": ("home",), "created_at": NOW, "updated_at": NOW, "version": 2, **extra,
    }  # fmt: skip


def sample(cls: type[Payload]) -> Payload:
    """A valid instance of every payload type."""
    if issubclass(cls, TaskState):
        return cls(**_task(changed=("title",)) if cls is TaskUpdated else _task())
    reminder = {"reminder_id": "r1", "task_id": TASK_ID, "title": "t", "remind_at": NOW}
    notification = {"notification_id": uuid.uuid4(), "user_id": "alice", "channel": "email"}
    samples: dict[type[Payload], Payload] = {
        TaskReminder: TaskReminder(**reminder, user_id="alice", task_version=1, fired_at=NOW),
        ReminderDigest: ReminderDigest(
            digest_id="d1",
            user_id="alice",
            window_start=NOW,
            window_end=NOW,
            items=(DigestItem(**reminder, kind="missed"),),
        ),  # fmt: skip
        NotificationCreated: NotificationCreated(
            user_id="alice",
            notification=NotificationBody(
                id=uuid.uuid4(),
                seq=1,
                kind="task.created",
                title="t",
                body="b",
                task_id=TASK_ID,
                event_id=str(uuid.uuid4()),
                created_at=NOW,
            ),  # fmt: skip
        ),
        NotificationDelivered: NotificationDelivered(**notification, delivered_at=NOW),
        NotificationFailed: NotificationFailed(
            **notification, error="550", attempts=5, failed_at=NOW
        ),
        UserErased: UserErased(
            user_id="alice", erasure_id=TASK_ID, requested_at=NOW, requested_by="self"
        ),
        UserErasureApplied: UserErasureApplied(
            user_id="alice", erasure_id=TASK_ID, service="reminders", applied_at=NOW
        ),
    }
    return samples[cls]


def _validator(document: dict[str, Any], pointer: str) -> jsonschema.Draft7Validator:
    # The root is the whole document, so `#/components/...` references resolve.
    return jsonschema.Draft7Validator({**document, "$ref": pointer})


@pytest.mark.parametrize("cls", ALL_PAYLOADS, ids=lambda c: c.event_type)
def test_what_the_codec_writes_matches_the_message_schema(
    document: dict[str, Any], cls: type[Payload]
) -> None:
    envelope = codec.Envelope(
        data=sample(cls), source="/taskflow/test", subject=str(TASK_ID), user_id="alice",
        time=NOW, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )  # fmt: skip
    event = orjson.loads(codec.encode(envelope))
    pointer = f"#/components/messages/{message_key(cls)}"
    _validator(document, pointer + "/payload").validate(event)
    headers = {"ce_type": cls.event_type, "traceparent": event["traceparent"]}
    _validator(document, pointer + "/headers").validate(headers)
    wrong = {**event, "type": "task.other"}
    assert not _validator(document, pointer + "/payload").is_valid(wrong)


def test_dead_letter_headers_match_the_schema(document: dict[str, Any]) -> None:
    headers = {"ce_type": "task.created"} | {
        name: value.decode() for name, value in dlq_headers("taskflow.tasks", 2, 41, "c", "bad")
    }
    validator = _validator(document, "#/components/messages/deadLetter/headers")
    validator.validate(headers)
    assert set(DLQ_HEADERS) <= set(headers)
    assert not validator.is_valid({"ce_type": "task.created"})
