"""The digest step across a restart, driven as Bytewax 0.21 drives it: items of the
resume epoch reach a fresh logic first, then the saved state's logic replaces it."""

from __future__ import annotations

from datetime import timedelta

from pipelines.reminders_logic import FlowContext, FreshWindows, UserDigestLogic
from reminders.domain.catchup import CatchUpPolicy
from reminders.domain.digest import Digest, admit
from tests.unit.reminders.factories import T0
from tests.unit.reminders.test_digest import WINDOW, fired


def context() -> FlowContext:
    return FlowContext(
        clock=lambda: T0 + timedelta(seconds=5),
        policy=CatchUpPolicy(),
        remind_at_due=True,
        idle_ttl=timedelta(days=1),
        digest_window=WINDOW,
        tick=timedelta(0),
    )


def test_a_loaded_window_adopts_what_a_fresh_one_held_meanwhile() -> None:
    fresh = FreshWindows(clock=lambda: 0.0)
    saved, _ = admit(None, fired(0), T0, WINDOW)
    saved, _ = admit(saved, fired(1), T0, WINDOW)

    live = UserDigestLogic(None, context(), fresh)  # the key's load has not come yet
    first, _ = live.on_item(fired(2))
    held, _ = live.on_item(fired(3))
    loaded = UserDigestLogic(saved, context(), fresh)  # Bytewax drops `live` for this

    digests, discard = loaded.on_notify()
    assert first == [fired(2)] and held == []
    assert discard
    assert isinstance(digests[0], Digest)
    assert [item.reminder_id for item in digests[0].items] == ["r1", "r3"]


def test_fresh_windows_are_only_remembered_in_the_first_minute() -> None:
    now = [0.0]
    fresh = FreshWindows(keep_for=60, clock=lambda: now[0])
    now[0] = 61.0
    live = UserDigestLogic(None, context(), fresh)
    live.on_item(fired(2))
    assert fresh.pop("alice") is None
