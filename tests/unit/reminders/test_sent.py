"""The index of reminders sent before this run, and the digest step's use of it after a
restart (pipelines/reminders/sent.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from bytewax.operators import StatefulLogic

from events.payloads import UserErased
from pipelines.reminders.erasure import ErasureDone, ErasureInput
from pipelines.reminders.logic import UserDigestLogic
from pipelines.reminders.sent import Resend, SentIndex, resent
from reminders.domain.digest import Digest, admit
from reminders.ports import SentDelivery
from tests.unit.reminders.factories import T0
from tests.unit.reminders.test_digest import WINDOW, fired
from tests.unit.reminders.test_digest_restart import context


def record(event_id: str, *reminder_ids: str) -> SentDelivery:
    return SentDelivery(
        event_id=event_id,
        user_id="alice",
        reminder_ids=reminder_ids,
        topic="t.reminders",
        key=b"alice",
        value=f"message {event_id}".encode(),
        headers=(("ce_type", b"reminder.digest"), ("traceparent", b"00-ab-cd-01")),
    )


def test_the_index_loads_once_and_sends_each_recorded_message_once() -> None:
    loads: list[int] = []

    def load() -> list[SentDelivery]:
        loads.append(1)
        return [record("r1", "r1"), record("d1", "r2", "r3"), record("d2", "r3", "r4")]

    index = SentIndex(load)
    assert loads == []  # nothing read until a reminder asks
    assert index.replayed("r9") is None
    assert index.replayed("r2") == [Resend(record("d1", "r2", "r3"))]
    assert index.replayed("r3") == []  # went out in d1, resent already
    assert index.replayed("r1") == [Resend(record("r1", "r1"))]
    assert index.replayed("r4") == [Resend(record("d2", "r3", "r4"))]
    assert index.replayed("r2") == []
    assert loads == [1]


def test_the_index_is_forgotten_once_the_replay_is_over() -> None:
    now = [100.0]
    index = SentIndex(
        lambda: [record("d1", "r1", "r2")], timedelta(seconds=60), monotonic=lambda: now[0]
    )
    assert index.replayed("r9") is None  # reads the records
    now[0] = 159.9
    assert index.replayed("r1") == [Resend(record("d1", "r1", "r2"))]
    now[0] = 160.0
    assert index.replayed("r2") is None


def test_a_resent_message_is_the_recorded_one_byte_for_byte() -> None:
    sent = record("d1", "r2", "r3")
    out = resent(Resend(sent))
    assert out.record is None  # recorded already
    message = out.message
    assert (message.topic, message.key, message.value) == (sent.topic, sent.key, sent.value)
    assert message.headers == list(sent.headers)


def test_a_fresh_logic_sends_a_recorded_reminder_as_recorded_and_keeps_no_window() -> None:
    index = SentIndex(lambda: [record("d1", "r1", "r2")])
    live = UserDigestLogic(None, context(0, index))
    assert live.on_item(fired(1)) == ([Resend(record("d1", "r1", "r2"))], StatefulLogic.DISCARD)
    assert live.window is None
    # A reminder not sent before still opens a window and goes out at once.
    assert live.on_item(fired(3)) == ([fired(3)], StatefulLogic.RETAIN)
    assert live.on_item(fired(2)) == ([], StatefulLogic.RETAIN)  # its message went already


def test_before_hold_from_a_recorded_reminder_is_not_sent_alone() -> None:
    index = SentIndex(lambda: [record("d1", "r1", "r2")])
    live = UserDigestLogic(None, context(30, index))
    assert live.on_item(fired(2)) == ([Resend(record("d1", "r1", "r2"))], StatefulLogic.DISCARD)
    assert live.on_item(fired(4)) == ([fired(4)], StatefulLogic.DISCARD)


def test_a_restored_window_drops_what_went_out_after_its_snapshot() -> None:
    """Snapshot: the window held r1, r2. Before the crash r3 came and the window closed
    into d123. After the restart the window must not close into a digest of r1, r2."""
    saved, _ = admit(None, fired(0), T0, WINDOW)
    saved, _ = admit(saved, fired(1), T0, WINDOW)
    saved, _ = admit(saved, fired(2), T0, WINDOW)
    index = SentIndex(lambda: [record("r0", "r0"), record("d123", "r1", "r2", "r3")])
    loaded = UserDigestLogic(saved, context(0, index))
    out, keep = loaded.on_item(fired(5))  # new: held in the restored window
    assert out == [Resend(record("d123", "r1", "r2", "r3"))] and keep == StatefulLogic.RETAIN
    assert loaded.on_item(fired(3)) == ([], StatefulLogic.RETAIN)
    digests, _ = loaded.on_notify()
    [digest] = digests
    assert isinstance(digest, Digest) and digest.items == (fired(5),)


def test_a_restored_window_that_closes_first_resends_and_sends_no_empty_digest() -> None:
    saved, _ = admit(None, fired(0), T0, WINDOW)
    saved, _ = admit(saved, fired(1), T0, WINDOW)
    index = SentIndex(lambda: [record("d1", "r1")])
    loaded = UserDigestLogic(saved, context(0, index))
    assert loaded.on_notify() == ([Resend(record("d1", "r1"))], StatefulLogic.DISCARD)


def test_an_erased_user_gets_nothing_resent() -> None:
    index = SentIndex(lambda: [record("d1", "r1")])
    logic = UserDigestLogic(None, context(0, index))
    erased = UserErased(
        user_id="alice", erasure_id=uuid.uuid4(), requested_at=T0, requested_by="self"
    )
    erasure = ErasureInput(user_id="alice", erasure=erased, traceparent=None)
    assert logic.on_item(erasure) == ([ErasureDone(erasure)], StatefulLogic.RETAIN)
    assert logic.on_item(fired(1)) == ([], StatefulLogic.RETAIN)
