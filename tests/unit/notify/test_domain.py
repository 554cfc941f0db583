"""Pure rules: what to notify, quiet hours, breakers, webhook signatures, hub fan-out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from events.codec import Envelope
from events.payloads import (
    ReminderDigest,
    TaskCreated,
    TaskReminder,
    TaskSnapshotted,
    TaskSnoozed,
    TaskUpdated,
)
from notify_ws.channels.breaker import Breaker, State
from notify_ws.channels.webhook import sign, verify
from notify_ws.decide import draft, routes
from notify_ws.exceptions import CircuitOpen
from notify_ws.hub.hub import TRY_AGAIN_LATER, Connection, Hub
from notify_ws.hub.session import Session
from notify_ws.metrics import Metrics
from notify_ws.preferences import Preferences, QuietHours, quiet_until

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TASK = {"id": uuid.UUID(int=1), "user_id": "u", "title": "Milk", "created_at": T0,
        "updated_at": T0, "version": 1}  # fmt: skip


def env(payload: object) -> Envelope:  # type: ignore[type-arg]
    return Envelope(data=payload, source="/t", subject="s", user_id="u")  # type: ignore[arg-type]


def test_kinds_and_dedupe_keys() -> None:
    created = env(TaskCreated(**TASK))
    d = draft(created)
    assert d is not None and d.kind == "task.created" and d.dedupe_key == f"event:{created.id}"
    updated = draft(env(TaskUpdated(**TASK, changed=("title", "due_at"))))
    assert updated is not None and updated.body == "Changed: title, due_at"
    assert draft(env(TaskSnapshotted(**TASK))) is None
    assert draft(env(TaskSnoozed(**TASK))) is None
    reminder = TaskReminder(reminder_id="r1", task_id=TASK["id"], user_id="u", title="Milk",
                            remind_at=T0, task_version=1, fired_at=T0)  # fmt: skip
    one, two = draft(env(reminder)), draft(env(reminder))
    assert one is not None and two is not None
    assert one.dedupe_key == two.dedupe_key == "reminder:r1"  # new event id, same reminder
    digest = ReminderDigest(digest_id="d1", user_id="u", window_start=T0, window_end=T0,
                            items=())  # fmt: skip
    made = draft(env(digest))
    assert made is not None and made.kind == "reminder.digest" and made.dedupe_key == "digest:d1"


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (datetime(2026, 1, 15, 21, 30, tzinfo=UTC), datetime(2026, 1, 16, 6, 0, tzinfo=UTC)),
        (datetime(2026, 1, 16, 5, 59, tzinfo=UTC), datetime(2026, 1, 16, 6, 0, tzinfo=UTC)),
        (datetime(2026, 1, 16, 6, 0, tzinfo=UTC), None),
        (datetime(2026, 1, 15, 20, 59, tzinfo=UTC), None),
        # Summer time: 07:00 in Berlin is 05:00 UTC.
        (datetime(2026, 7, 1, 23, 0, tzinfo=UTC), datetime(2026, 7, 2, 5, 0, tzinfo=UTC)),
    ],
)
def test_quiet_hours_in_the_users_zone(now: datetime, until: datetime | None) -> None:
    prefs = Preferences(
        timezone="Europe/Berlin", quiet_hours=QuietHours(start="22:00", end="07:00")
    )
    assert quiet_until(prefs, now) == until


def test_routes_defer_external_channels_and_digest_them() -> None:
    prefs = Preferences.model_validate({
        "channels": {"in_app": True, "email": True, "push": False, "webhook": True},
        "email": "a@b.c", "webhook_url": "https://h.example/x",
        "quiet_hours": {"start": "09:00", "end": "17:00"}, "digest": True,
    })  # fmt: skip
    got = routes(prefs, T0)
    assert [(r.channel, r.digest) for r in got] == [("email", True), ("webhook", True)]
    assert {r.deliver_at for r in got} == {datetime(2026, 1, 15, 17, 0, tzinfo=UTC)}
    assert all(r.deliver_at is None for r in routes(prefs, datetime(2026, 1, 15, 18, tzinfo=UTC)))


def test_breaker_opens_half_opens_and_closes() -> None:
    now = [0.0]
    b = Breaker("email", threshold=2, reset=10.0, monotonic=lambda: now[0])
    b.before_call()
    b.failure()
    assert b.state is State.CLOSED
    b.failure()
    assert b.state is State.OPEN
    with pytest.raises(CircuitOpen):
        b.before_call()
    now[0] = 10.0
    b.before_call()  # the probe
    assert b.state is State.HALF_OPEN
    with pytest.raises(CircuitOpen):
        b.before_call()  # only one probe at a time
    b.failure()
    assert b.state is State.OPEN and b.retry_in() == 10.0
    now[0] = 20.0
    b.before_call()
    b.success()
    assert b.state is State.CLOSED


def test_webhook_signature_round_trip() -> None:
    header = sign(b"k", 1700000000, b'{"a":1}')
    assert header.startswith("t=1700000000,v1=")
    assert verify(b"k", header, b'{"a":1}')
    assert not verify(b"k", header, b'{"a":2}')
    assert not verify(b"other", header, b'{"a":1}')
    assert not verify(b"k", "garbage", b"")


async def test_hub_fans_out_and_drops_a_full_queue_with_1013() -> None:
    hub = Hub(Metrics())
    fast, slow, other = Connection("u", 4), Connection("u", 1), Connection("v", 4)
    for c in (fast, slow, other):
        hub.register(c)
    assert hub.publish("u", 1, "f1") == 2
    assert hub.publish("u", 2, "f2") == 2
    assert slow.close_code == TRY_AGAIN_LATER
    assert fast.close_code is None and fast.queued == 2
    assert other.queued == 0
    hub.unregister(slow)
    assert len(hub) == 2


async def test_a_repeated_seq_takes_no_place_in_the_queue() -> None:
    # The fast path and the Kafka feed bring the same notification: a client that keeps up
    # must not be closed because each frame came twice.
    hub = Hub(Metrics())
    conn = Connection("u", 2)
    hub.register(conn)
    assert [hub.publish("u", seq, f"f{seq}") for seq in (1, 2, 1, 2)] == [1, 1, 0, 0]
    assert conn.close_code is None and conn.queued == 2
    assert hub.publish("u", 3, "f3") == 1  # a new one still finds the queue full
    assert conn.close_code == TRY_AGAIN_LATER


async def test_client_frames_ping_and_errors() -> None:
    session = Session(pool=None, hub=Hub(Metrics()), metrics=Metrics(), clock=None)  # type: ignore[arg-type]
    conn = Connection("u", 4)
    assert await session.handle(conn, '{"type":"ping"}') == '{"type":"pong"}'
    for bad in ("nope", "[]", '{"type":"x"}', '{"type":"read","ids":[]}',
                '{"type":"read","ids":["zz"]}'):  # fmt: skip
        reply = await session.handle(conn, bad)
        assert reply is not None and orjson.loads(reply)["type"] == "error"
    await asyncio.sleep(0)
