"""The hub without I/O: the fast path and the Kafka copy of one notification make one frame;
an idle connection keeps no queue and no sender task; readiness names what it waits for."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from notify_ws.db.notifications import Notification
from notify_ws.hub.hub import Connection, Hub, Note
from notify_ws.hub.local import hand_to_hub
from notify_ws.hub.session import Session
from notify_ws.metrics import Metrics

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def notification(user: str, seq: int) -> Notification:
    return Notification(
        id=uuid.uuid4(), user_id=user, seq=seq, kind="task.created", title=f"t{seq}",
        body="", task_id=None, event_id=f"e{seq}", created_at=T0,
    )  # fmt: skip


def live(session: Session, conn: Connection, sent: list[str]) -> None:
    """What `Session.start` leaves behind after an empty replay, without a database."""

    async def send(frame: str) -> None:
        sent.append(frame)

    session.attach(conn, send)


async def settle(conn: Connection) -> None:
    """Until `conn` has sent its queue: the flush runs when the current loop step ends."""
    async with asyncio.timeout(5):
        while conn.due or conn.sender is not None:
            await (conn.sender or asyncio.sleep(0))


async def test_fast_path_then_kafka_copy_sends_one_frame() -> None:
    metrics = Metrics()
    hub = Hub(metrics)
    session = Session(pool=None, hub=hub, metrics=metrics, clock=None)  # type: ignore[arg-type]
    conn, sent = Connection("u", 8), list[str]()
    hub.register(conn)
    live(session, conn, sent)
    note = notification("u", 1)

    hand_to_hub(hub, metrics)([note, notification("nobody-here", 1)])
    await settle(conn)
    hub.publish("u", 1, Note("kafka copy"))  # the same seq, later, through the feed
    await settle(conn)

    frames = [orjson.loads(f) for f in sent]
    assert [f["type"] for f in frames] == ["notification", "unread_count"]
    assert frames[0]["notification"]["id"] == str(note.id)
    assert metrics.registry.get_sample_value("taskflow_websocket_fast_path_total") == 1


async def test_an_idle_connection_holds_no_queue_and_no_task() -> None:
    metrics = Metrics()
    hub = Hub(metrics)
    session = Session(pool=None, hub=hub, metrics=metrics, clock=None)  # type: ignore[arg-type]
    conn, sent = Connection("u", 8), list[str]()
    hub.register(conn)
    live(session, conn, sent)
    assert conn.pending is None and conn.sender is None
    hub.publish("u", 1, "f1")
    hub.publish("u", 2, "f2")
    assert conn.due and conn.sender is None and conn.queued == 2  # one flush for the burst
    await settle(conn)
    assert sent == ["f1", "f2", '{"type":"unread_count","count":2}']  # one count per burst
    assert conn.pending is None and conn.sender is None


@pytest.mark.parametrize(
    ("worker", "feed", "waiting"),
    [
        (False, True, "worker group assignment"),
        (True, False, "hub feed partitions"),
        (True, True, None),
    ],
)
async def test_check_partitions_waits_for_both_assignments(
    worker: bool, feed: bool, waiting: str | None
) -> None:
    from types import SimpleNamespace

    from notify_ws.service import Service
    from notify_ws.settings import Config, NotifySettings

    ctx = SimpleNamespace(config=Config(notify=NotifySettings()))
    service = Service(ctx)  # type: ignore[arg-type]
    service.worker = SimpleNamespace(assigned=asyncio.Event())  # type: ignore[assignment]
    service.feed = SimpleNamespace(ready=asyncio.Event())  # type: ignore[assignment]
    if worker:
        service.worker.assigned.set()  # type: ignore[union-attr]
    if feed:
        service.feed.ready.set()  # type: ignore[union-attr]
    if waiting is None:
        await service.check_partitions()
    else:
        with pytest.raises(RuntimeError, match=waiting):
            await service.check_partitions()


def test_tune_gc_raises_the_first_threshold_and_zero_keeps_the_default() -> None:
    import gc

    from notify_ws.service import tune_gc

    before = gc.get_threshold()
    try:
        tune_gc(0)
        assert gc.get_threshold() == before
        tune_gc(20_000)
        assert gc.get_threshold() == (20_000, *before[1:])
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
