"""The erasure events travel through consumers that predate them without harm: they
decode, and the notification worker drafts no notification from them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from events import codec
from events.payloads import Payload, UserErased, UserErasureApplied
from notify_ws.decide import draft

NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
ERASURE = uuid.UUID("0190f2b4-0000-7000-8000-0000000000e1")

ERASURE_EVENTS: tuple[Payload, ...] = (
    UserErased(user_id="alice", erasure_id=ERASURE, requested_at=NOW, requested_by="self"),
    UserErasureApplied(user_id="alice", erasure_id=ERASURE, service="reminders", applied_at=NOW),
)


@pytest.mark.parametrize("payload", ERASURE_EVENTS, ids=lambda p: p.event_type)
def test_erasure_events_decode_and_notify_nobody(payload: Payload) -> None:
    envelope = codec.Envelope(
        data=payload, source="/taskflow/test", subject="alice", user_id="alice", time=NOW
    )
    decoded = codec.decode(codec.encode(envelope))
    assert decoded.data == payload
    assert decoded.subject == decoded.user_id == "alice"
    assert draft(decoded) is None
