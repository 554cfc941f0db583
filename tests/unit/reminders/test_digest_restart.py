"""The digest step right after a (re)start: Bytewax 0.21 runs items of the resume epoch
on a fresh logic before it loads the key's saved state and replaces that logic, so a
fresh logic must not hold anything until the loads are surely done."""

from __future__ import annotations

from datetime import timedelta

from bytewax.operators import StatefulLogic

from pipelines.reminders.logic import FlowContext, UserDigestLogic
from pipelines.reminders.sent import NOTHING_SENT, SentIndex
from reminders.domain.catchup import CatchUpPolicy
from reminders.domain.digest import Digest, admit
from tests.unit.reminders.factories import T0
from tests.unit.reminders.test_digest import WINDOW, fired


def context(hold_from_s: float, sent: SentIndex = NOTHING_SENT) -> FlowContext:
    return FlowContext(
        clock=lambda: T0,
        policy=CatchUpPolicy(),
        remind_at_due=True,
        idle_ttl=timedelta(days=1),
        digest_window=WINDOW,
        tick=timedelta(0),
        hold_from=T0 + timedelta(seconds=hold_from_s),
        sent=sent,
    )


def test_before_hold_from_a_fresh_logic_sends_each_reminder_and_keeps_nothing() -> None:
    live = UserDigestLogic(None, context(30))
    assert live.on_item(fired(1)) == ([fired(1)], StatefulLogic.DISCARD)
    out, discard = live.on_item(fired(2, missed=True))
    assert discard == StatefulLogic.DISCARD
    assert isinstance(out[0], Digest) and [i.reminder_id for i in out[0].items] == ["r2"]


def test_a_saved_window_keeps_collecting_before_hold_from() -> None:
    saved, _ = admit(None, fired(0), T0, WINDOW)
    loaded = UserDigestLogic(saved, context(30))
    assert loaded.on_item(fired(1)) == ([], StatefulLogic.RETAIN)
    digests, _ = loaded.on_notify()
    assert isinstance(digests[0], Digest) and digests[0].items == (fired(1),)


def test_after_hold_from_a_fresh_logic_opens_a_window() -> None:
    live = UserDigestLogic(None, context(0))
    assert live.on_item(fired(1)) == ([fired(1)], StatefulLogic.RETAIN)
    assert live.on_item(fired(2)) == ([], StatefulLogic.RETAIN)
