"""Entries the audit service writes about its own actions (purges, legal holds)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from audit_store.chain import canonical_data
from audit_store.records import AuditRecord, Origin
from events.codec import new_event_id

LOCAL_TOPIC = "audit-service"
SOURCE = "/taskflow/audit-service"
ORIGIN = Origin(LOCAL_TOPIC, 0, -1)


def service_record(
    event_type: str, actor: str, data: dict[str, Any], now: datetime, task_id: str | None = None
) -> AuditRecord:
    """An entry in the service's own chain; `actor` is the operator (or "system")."""
    return AuditRecord(
        origin=ORIGIN,
        event_id=new_event_id(),
        type=event_type,
        source=SOURCE,
        subject=task_id or "",
        user_id=actor,
        task_id=task_id,
        occurred_at=now,
        data_json=canonical_data(data),
        trace_id=None,
        snapshot=False,
        search_text=f"{event_type} {actor}",
    )
