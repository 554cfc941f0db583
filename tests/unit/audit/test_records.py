"""From Kafka message to audit record: fields, trace ids, snapshots, and poison."""

from __future__ import annotations

import uuid

import orjson
import pytest

from audit_store.personal import merge
from audit_store.records import AuditRecord, Origin, Poison, to_record, trace_id_of
from events.payloads import TaskSnapshotted, TaskUpdated
from tests.unit.audit.factories import (
    TRACE_ID,
    TRACEPARENT,
    event_bytes,
    notification_payload,
    reminder_payload,
    task_payload,
)

ORIGIN = Origin("taskflow.tasks", 2, 41, 1_767_225_600_000)


def record(
    value: bytes | None, headers: list[tuple[str, bytes | str | None]] | None = None
) -> AuditRecord | Poison:
    return to_record(ORIGIN, b"key", value, headers or [])


def test_a_task_event_becomes_a_record() -> None:
    task_id = uuid.uuid4()
    raw = event_bytes(task_payload(TaskUpdated, "alice", task_id, "buy oat milk"), "alice")
    rec = record(raw, [("traceparent", TRACEPARENT.encode())])
    assert isinstance(rec, AuditRecord)
    doc = orjson.loads(raw)
    assert (rec.event_id, rec.type, rec.user_id) == (doc["id"], "task.updated", "alice")
    assert (rec.subject, rec.task_id) == (str(task_id), str(task_id))
    assert rec.origin.chain_id == "taskflow.tasks/2"
    assert rec.trace_id == TRACE_ID
    assert rec.snapshot is False
    # The personal fields travel apart (the writer seals them); together they are the data.
    clear = orjson.loads(rec.data_json)
    assert "title" not in clear and "description" not in clear and "tags" not in clear
    assert rec.personal_json is not None
    assert merge(clear, orjson.loads(rec.personal_json)) == doc["data"]
    assert "oat" in rec.search_text and "home" in rec.search_text


def test_snapshots_are_marked() -> None:
    rec = record(event_bytes(task_payload(TaskSnapshotted)))
    assert isinstance(rec, AuditRecord) and rec.snapshot and rec.type == "task.snapshot"


def test_reminders_and_notifications_name_their_task() -> None:
    task_id = uuid.uuid4()
    reminder = record(event_bytes(reminder_payload("bob", task_id), "bob"))
    notice = record(event_bytes(notification_payload("bob", task_id), "bob"))
    assert isinstance(reminder, AuditRecord) and reminder.task_id == str(task_id)
    assert isinstance(notice, AuditRecord) and notice.task_id == str(task_id)
    assert notice.user_id == "bob"


def test_the_header_traceparent_wins_over_the_extension() -> None:
    doc = orjson.loads(event_bytes(task_payload()))
    doc["traceparent"] = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    rec = record(orjson.dumps(doc), [("traceparent", TRACEPARENT)])
    assert isinstance(rec, AuditRecord) and rec.trace_id == TRACE_ID
    rec = record(orjson.dumps(doc))
    assert isinstance(rec, AuditRecord) and rec.trace_id == "1" * 32


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json",
        b"[1, 2]",
        event_bytes(task_payload()).replace(b'"task.created"', b'"task.unknown"'),
        event_bytes(task_payload()).replace(b'"specversion":"1.0"', b'"specversion":"0.3"'),
        event_bytes(task_payload(title="a \x00 b")),
    ],
    ids=["none", "empty", "text", "array", "unknown-type", "old-spec", "nul"],
)
def test_anything_undecodable_is_poison_with_its_origin(value: bytes | None) -> None:
    rec = record(value, [("ce_type", b"x")])
    assert isinstance(rec, Poison)
    assert rec.origin == ORIGIN and rec.key == b"key" and rec.value == value
    assert rec.headers == (("ce_type", b"x"),)
    assert rec.error


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (TRACEPARENT, TRACE_ID),
        (None, None),
        ("", None),
        ("garbage", None),
        ("00-" + "0" * 32 + "-b7ad6b7169203331-01", None),
        ("00-" + "A" * 32 + "-b7ad6b7169203331-01", None),
    ],
)
def test_trace_id_of(traceparent: str | None, expected: str | None) -> None:
    assert trace_id_of(traceparent) == expected
