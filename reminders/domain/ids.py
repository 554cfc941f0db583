"""Deterministic ids, so a reminder fired twice (crash and replay) is recognisably one."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

# Fixed namespace: changing it would change every id and defeat duplicate collapsing.
NAMESPACE = uuid.UUID("6f1c3c4e-0d7a-4f55-9a55-2b8d8c6a1e01")


def reminder_id(task_id: str, remind_at: datetime, task_version: int) -> str:
    """UUIDv5 of (task id, remind time in UTC, task version)."""
    instant = remind_at.astimezone(UTC).isoformat()
    return str(uuid.uuid5(NAMESPACE, f"reminder/{task_id}/{instant}/{task_version}"))


def digest_id(user_id: str, reminder_ids: Iterable[str]) -> str:
    """UUIDv5 of the user and the (sorted) reminder ids a digest carries."""
    joined = ",".join(sorted(reminder_ids))
    return str(uuid.uuid5(NAMESPACE, f"digest/{user_id}/{joined}"))
