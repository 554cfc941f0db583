"""What to do with a reminder that fires late (e.g. its time passed while the flow was down)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Decision = Literal["fire", "missed", "drop"]


@dataclass(frozen=True, slots=True)
class CatchUpPolicy:
    """Fire late within a grace period (per kind), else fold into a "missed while away" digest.

    Reminders older than `max_age` (when set) are dropped and counted, so replaying a long
    topic history does not produce a digest of ancient reminders.
    """

    grace: timedelta = timedelta(minutes=5)
    grace_by_kind: Mapping[str, timedelta] = field(default_factory=dict)
    max_age: timedelta | None = timedelta(days=7)

    def grace_for(self, kind: str) -> timedelta:
        return self.grace_by_kind.get(kind, self.grace)


def classify(policy: CatchUpPolicy, remind_at: datetime, kind: str, fired_at: datetime) -> Decision:
    """`fire` on time or within grace, `missed` beyond it, `drop` beyond `max_age`."""
    lateness = fired_at - remind_at
    if lateness <= policy.grace_for(kind):
        return "fire"
    if policy.max_age is not None and lateness > policy.max_age:
        return "drop"
    return "missed"
