"""Worker semantics: quiet hours and digest, duplicates, stale versions, poison -> DLQ."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from events.kafka import KafkaSettings
from events.payloads import TaskReminder, TaskSnapshotted, TaskUpdated
from tests.integration.notify.conftest import (
    T0,
    Kafka,
    SmtpSink,
    auth,
    eventually,
    make_settings,
    running,
    task_created,
)


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


async def inbox(svc: object, user: str) -> dict[str, object]:
    r = await svc.http.get("/api/v1/notifications", headers=auth(user))  # type: ignore[attr-defined]
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


async def test_quiet_hours_defer_email_and_digest_sends_one_summary(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    clock = MovableClock(datetime(2026, 1, 15, 21, 30, tzinfo=UTC))  # 22:30 in Berlin
    async with running(make_settings(notify_db, smtp.port), kafka_settings, clock=clock) as svc:
        prefs = {
            "channels": {"in_app": True, "email": True, "push": False, "webhook": False},
            "email": "kim@example.test", "timezone": "Europe/Berlin",
            "quiet_hours": {"start": "22:00", "end": "07:00"}, "digest": True,
        }  # fmt: skip
        r = await svc.http.put("/api/v1/preferences", headers=auth("kim"), json=prefs)
        assert r.status_code == 200
        got = (await svc.http.get("/api/v1/preferences", headers=auth("kim"))).json()
        assert got == {**prefs, "webhook_url": None}
        await kafka.produce(task_created("kim", "Night one"), "kim")
        await kafka.produce(task_created("kim", "Night two"), "kim")

        async def landed() -> bool:
            return (await inbox(svc, "kim"))["unread_count"] == 2

        await eventually(landed)  # in-app lands during quiet hours
        async with svc.app.extensions["notify_ws"].pool.acquire() as conn:
            statuses = await conn.fetch("SELECT status, next_attempt_at FROM deliveries")
        assert {s["status"] for s in statuses} == {"deferred"}
        assert {s["next_attempt_at"] for s in statuses} == {datetime(2026, 1, 16, 6, tzinfo=UTC)}
        assert smtp.messages == []

        clock.at = datetime(2026, 1, 16, 6, 0, tzinfo=UTC)  # 07:00 in Berlin

        async def mailed() -> bool:
            return len(smtp.messages) >= 1

        await eventually(mailed)
        (mail,) = smtp.messages
        assert "2 notifications" in mail["Subject"]
        text = mail.get_payload()
        assert "Night one" in text and "Night two" in text


async def test_duplicates_and_stale_versions_make_one_notification(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        task = task_created("lee", "Dup", version=1)
        event_id = await kafka.produce(task, "lee")
        await kafka.produce(task, "lee", event_id=event_id)  # same event again
        reminder = TaskReminder(
            reminder_id="r-1", task_id=task.id, user_id="lee", title="Dup", remind_at=T0,
            task_version=1, fired_at=T0,
        )  # fmt: skip
        # A dataflow crash can re-fire one reminder under a new event id.
        await kafka.produce(reminder, "lee")
        await kafka.produce(reminder, "lee")
        update = TaskUpdated(**{**task.model_dump(), "version": 3}, changed=("title",))
        stale = TaskUpdated(**{**task.model_dump(), "version": 2}, changed=("priority",))
        snapshot = TaskSnapshotted(**{**task.model_dump(), "version": 3})
        for payload in (update, stale, snapshot):
            await kafka.produce(payload, "lee")
        marker = task_created("lee", "Last", task_id=uuid.uuid4())
        await kafka.produce(marker, "lee")

        async def all_in() -> dict[str, object] | None:
            box = await inbox(svc, "lee")
            titles = [i["title"] for i in box["items"]]  # type: ignore[attr-defined]
            return box if "New task: Last" in titles and len(titles) >= 4 else None

        box = await eventually(all_in)
        kinds = sorted(i["kind"] for i in box["items"])  # type: ignore[attr-defined]
        assert kinds == ["task.created", "task.created", "task.reminder", "task.updated"]
        assert sorted(i["seq"] for i in box["items"]) == [1, 2, 3, 4]  # type: ignore[attr-defined]


async def test_poison_messages_go_to_the_dlq_and_processing_continues(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    topics = kafka_settings.topics
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        await kafka.produce_raw(topics.tasks, b"not json at all", key=b"poison")
        await kafka.produce_raw(topics.reminders, b'{"specversion":"1.0","id":"x"}', key=b"p2")
        await kafka.produce(task_created("mia", "After poison"), "mia")

        async def landed() -> bool:
            return (await inbox(svc, "mia"))["unread_count"] == 1

        await eventually(landed)
        dead = await kafka.read_async(topics.dlq, 2)
        assert sorted(m.key() for m in dead) == [b"p2", b"poison"]
        for m in dead:
            headers = dict(m.headers())
            assert headers["dlq.source.topic"] in (topics.tasks.encode(), topics.reminders.encode())
            assert headers["dlq.error"].startswith(b"DecodeError")
            assert headers["dlq.consumer"].startswith(b"notify-worker")
