"""One user's data as JSON (`GET /api/v1/me/export`): inbox, preferences, push
subscriptions and delivery records. Key material (a subscription's `p256dh`/`auth`) is
left out; the webhook signing secret is the service's, never stored per user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from notify_ws.db import notifications as nt
from notify_ws.db import preferences as pf


async def export(conn: Any, user_id: str, now: datetime) -> dict[str, Any]:
    """Everything kept of `user_id`; run it in one snapshot so the parts agree."""
    notes = await conn.fetch("SELECT * FROM notifications WHERE user_id = $1 ORDER BY seq", user_id)
    stored = await conn.fetchrow(
        "SELECT doc, updated_at FROM preferences WHERE user_id = $1", user_id
    )
    prefs = await pf.get(conn, user_id)
    subs = await pf.subscriptions(conn, user_id)
    deliveries = await conn.fetch(
        # Both halves on an index: per notification, and the digests (partial index).
        "SELECT d.* FROM notifications n JOIN deliveries d ON d.notification_id = n.id"
        " WHERE n.user_id = $1 UNION ALL SELECT * FROM deliveries"
        " WHERE notification_id IS NULL AND user_id = $1 ORDER BY updated_at, id",
        user_id,
    )
    return {
        "service": "notifications",
        "user_id": user_id,
        "exported_at": now.isoformat(),
        "notifications": [nt._row(r).body_json() for r in notes],
        "preferences": {
            **prefs.model_dump(mode="json"),
            "stored": stored is not None,
            "updated_at": stored["updated_at"].isoformat() if stored else None,
        },
        "push_subscriptions": [
            {"id": str(s.id), "endpoint": s.endpoint, "created_at": s.created_at.isoformat()}
            for s in subs
        ],
        "deliveries": [_delivery(r) for r in deliveries],
    }


def _delivery(r: Any) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "notification_id": str(r["notification_id"]) if r["notification_id"] else None,
        "digest_of": [str(i) for i in r["digest_of"] or ()],
        "channel": r["channel"],
        "status": r["status"],
        "attempts": r["attempts"],
        "last_error": r["last_error"],
        "next_attempt_at": r["next_attempt_at"].isoformat(),
        "updated_at": r["updated_at"].isoformat(),
    }
