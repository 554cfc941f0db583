"""Preferences and Web Push subscriptions, per user."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from uuid_utils.compat import uuid7

from notify_ws.preferences import Preferences


async def get(conn: Any, user_id: str) -> Preferences:
    doc = await conn.fetchval("SELECT doc FROM preferences WHERE user_id = $1", user_id)
    return Preferences.model_validate_json(doc) if doc else Preferences()


async def get_many(conn: Any, user_ids: Sequence[str]) -> dict[str, Preferences]:
    """Preferences of several users; defaults for those who never set any."""
    rows = await conn.fetch(
        "SELECT user_id, doc FROM preferences WHERE user_id = ANY($1::text[])", list(user_ids)
    )
    found = {r["user_id"]: Preferences.model_validate_json(r["doc"]) for r in rows}
    return {user: found.get(user) or Preferences() for user in user_ids}


async def put(conn: Any, user_id: str, prefs: Preferences, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO preferences (user_id, doc, updated_at) VALUES ($1, $2::jsonb, $3)"
        " ON CONFLICT (user_id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at",
        user_id,
        orjson.dumps(prefs.model_dump(mode="json")).decode(),
        now,
    )


@dataclass(frozen=True, slots=True)
class PushSubscription:
    id: uuid.UUID
    user_id: str
    endpoint: str
    p256dh: str
    auth: str
    created_at: datetime

    def info(self) -> dict[str, Any]:
        """The browser's PushSubscription JSON, as pywebpush wants it."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "endpoint": self.endpoint,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
            "created_at": self.created_at.isoformat(),
        }


def _sub(r: Any) -> PushSubscription:
    return PushSubscription(
        r["id"], r["user_id"], r["endpoint"], r["p256dh"], r["auth"], r["created_at"]
    )


async def add_subscription(
    conn: Any, user_id: str, endpoint: str, p256dh: str, auth: str, now: datetime
) -> tuple[PushSubscription, bool]:
    """Store a subscription; the same endpoint again updates its keys. True if new."""
    row = await conn.fetchrow(
        "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, endpoint)"
        " DO UPDATE SET p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth"
        " RETURNING *, (xmax = 0) AS inserted",
        uuid.UUID(str(uuid7())),
        user_id,
        endpoint,
        p256dh,
        auth,
        now,
    )
    return _sub(row), bool(row["inserted"])


async def subscriptions(conn: Any, user_id: str) -> list[PushSubscription]:
    rows = await conn.fetch(
        "SELECT * FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at", user_id
    )
    return [_sub(r) for r in rows]


async def delete_subscription(conn: Any, user_id: str, sub_id: uuid.UUID) -> bool:
    done = await conn.execute(
        "DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2", sub_id, user_id
    )
    return bool(done.endswith(" 1"))
