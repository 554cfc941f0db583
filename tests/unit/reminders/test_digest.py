"""Per-user digest windows: first on time, the burst after it as one digest."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from reminders.domain.digest import Digest, UserWindow, admit, close
from reminders.domain.timers import Fired
from tests.unit.reminders.factories import T0

WINDOW = timedelta(seconds=60)


def fired(n: int, missed: bool = False) -> Fired:
    return Fired(
        reminder_id=f"r{n}",
        task_id=f"t{n}",
        user_id="alice",
        title=f"task {n}",
        remind_at=T0 + timedelta(seconds=n),
        due_at=None,
        kind="due",
        task_version=1,
        fired_at=T0 + timedelta(seconds=n),
        missed=missed,
        traceparent=None,
    )


def test_lone_reminder_goes_out_at_once_and_window_closes_empty() -> None:
    window, out = admit(None, fired(0), T0, WINDOW)
    assert out == [fired(0)]
    assert window == UserWindow("alice", T0, T0 + WINDOW)
    assert close(window) is None


def test_burst_within_window_is_held_then_one_digest() -> None:
    window, _ = admit(None, fired(0), T0, WINDOW)
    window, out1 = admit(window, fired(10), T0 + timedelta(seconds=10), WINDOW)
    window, out2 = admit(window, fired(59), T0 + timedelta(seconds=59), WINDOW)
    assert out1 == out2 == []
    digest = close(window)
    assert isinstance(digest, Digest)
    assert [i.reminder_id for i in digest.items] == ["r10", "r59"]
    assert (digest.window_start, digest.window_end) == (T0, T0 + WINDOW)
    assert digest.digest_id == close(replace(window, held=window.held[::-1])).digest_id  # type: ignore[union-attr]


def test_reminder_after_window_end_flushes_digest_and_goes_out() -> None:
    window, _ = admit(None, fired(0), T0, WINDOW)
    window, _ = admit(window, fired(5), T0 + timedelta(seconds=5), WINDOW)
    later = T0 + timedelta(seconds=61)
    window, out = admit(window, fired(61), later, WINDOW)
    assert isinstance(out[0], Digest) and out[1] == fired(61)
    assert window.start == later and window.held == ()


def test_missed_reminders_never_go_out_alone() -> None:
    window, out = admit(None, fired(0, missed=True), T0, WINDOW)
    assert out == [] and window.held == (fired(0, missed=True),)
    window, out = admit(window, fired(1, missed=True), T0, WINDOW)
    digest = close(window)
    assert digest is not None and len(digest.items) == 2


def test_a_replayed_reminder_is_held_once() -> None:
    window, _ = admit(None, fired(0), T0, WINDOW)
    window, _ = admit(window, fired(1), T0, WINDOW)
    window, _ = admit(window, fired(1), T0, WINDOW)
    assert len(window.held) == 1
