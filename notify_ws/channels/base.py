"""The channel port: what the dispatcher hands a channel and what it gets back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from notify_ws.db.notifications import Notification
from notify_ws.preferences import Preferences

Outcome = Literal["delivered", "skipped"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to one user: a notification, or a digest of several deferred ones."""

    user_id: str
    notifications: Sequence[Notification]
    prefs: Preferences
    digest: bool = False

    @property
    def subject(self) -> str:
        if self.digest:
            return f"TaskFlow: {len(self.notifications)} notifications while you were away"
        return self.notifications[0].title

    @property
    def text(self) -> str:
        if not self.digest:
            return self.notifications[0].body
        return "\n".join(f"- {n.title}: {n.body}" for n in self.notifications)

    def payload(self) -> dict[str, Any]:
        """The JSON body sent by webhook and push."""
        if self.digest:
            return {
                "type": "digest",
                "user_id": self.user_id,
                "notifications": [n.body_json() for n in self.notifications],
            }
        return {
            "type": "notification",
            "user_id": self.user_id,
            "notification": self.notifications[0].body_json(),
        }


class Channel(Protocol):
    """An external delivery channel; raises `ChannelError` when it cannot deliver."""

    name: str

    def breaker_key(self, message: Outgoing) -> str:
        """Which circuit breaker guards this message (per channel, or per host)."""
        ...

    async def deliver(self, message: Outgoing) -> Outcome: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def outcome_or_skip(sent: int) -> Outcome:
    return "delivered" if sent else "skipped"


__all__ = ["Channel", "Outcome", "Outgoing", "outcome_or_skip"]
