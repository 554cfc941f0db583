"""Per-user digest windows: the first reminder goes out at once, a burst after it is batched.

Windows run on fire (processing) time: a reminder that fires while the user's window is
open is held and delivered in one digest when the window ends. A reminder that fires with
no window open is delivered immediately and opens one, so a lone reminder is never
delayed. Missed ("while away") reminders never go out alone: they always wait for the
window's digest. Nothing arrives "too late" for a window: whatever fires is either sent,
or held in the window that is open then.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from reminders.domain.ids import digest_id
from reminders.domain.timers import Fired


@dataclass(frozen=True, slots=True)
class UserWindow:
    user_id: str
    start: datetime
    end: datetime
    held: tuple[Fired, ...] = ()


@dataclass(frozen=True, slots=True)
class Digest:
    digest_id: str
    user_id: str
    window_start: datetime
    window_end: datetime
    items: tuple[Fired, ...]


Delivery = Fired | Digest


def close(window: UserWindow) -> Digest | None:
    """The digest of what the window held, or None if it held nothing."""
    if not window.held:
        return None
    return Digest(
        digest_id=digest_id(window.user_id, (item.reminder_id for item in window.held)),
        user_id=window.user_id,
        window_start=window.start,
        window_end=window.end,
        items=window.held,
    )


def alone(item: Fired, now: datetime) -> Delivery:
    """`item` delivered on its own, outside any window: a missed reminder still comes as
    a digest (of one), as missed ones always do."""
    if not item.missed:
        return item
    digest = close(UserWindow(item.user_id, now, now, (item,)))
    assert digest is not None  # noqa: S101 - a window holding an item has a digest
    return digest


def admit(
    window: UserWindow | None, item: Fired, now: datetime, length: timedelta
) -> tuple[UserWindow, list[Delivery]]:
    """Take one fired reminder at `now`; returns the window after it and what to send now."""
    out: list[Delivery] = []
    if window is not None and now >= window.end:
        digest = close(window)
        if digest is not None:
            out.append(digest)
        window = None
    if window is not None:
        if any(held.reminder_id == item.reminder_id for held in window.held):
            return window, out  # the same reminder fired again (replay after a crash)
        return replace(window, held=(*window.held, item)), out
    if item.missed:
        return UserWindow(item.user_id, now, now + length, (item,)), out
    out.append(item)
    return UserWindow(item.user_id, now, now + length), out
