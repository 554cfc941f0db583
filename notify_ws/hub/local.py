"""The fast path: notifications this process's worker just committed go to this process's
hub directly, without the Kafka round trip (the feed still brings every instance's
notifications; the per-connection seq filter sends each frame once)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from opentelemetry import trace

from notify_ws.db.notifications import Notification
from notify_ws.hub.hub import Hub, Note
from notify_ws.hub.session import note_frame
from notify_ws.metrics import Metrics
from notify_ws.worker.outbox import created_event_id
from observability.propagation import context_from_traceparent

log = logging.getLogger(__name__)


def hand_to_hub(hub: Hub, metrics: Metrics) -> Callable[[Sequence[Notification]], None]:
    """The worker's `on_committed`: queue each committed notification for its user's
    sockets on this node. Never raises into the worker: the Kafka copy is the fallback."""

    def on_committed(notes: Sequence[Notification]) -> None:
        for note in notes:
            if not hub.has_user(note.user_id):
                continue
            try:
                frame = note_frame(note)
                context = context_from_traceparent(note.traceparent)
                parent = trace.get_current_span(context).get_span_context()
                # As on the Kafka path: a `websocket send` span only under a sampled parent,
                # here the worker's span of the event that made the notification.
                sampled = parent.is_valid and parent.trace_flags.sampled
                traced = context if sampled else None
                note_id, event_id = str(note.id), created_event_id(note.id)
                hub.publish(note.user_id, note.seq, Note(frame, traced, note_id, event_id))
                metrics.fast_path.inc()
            except Exception:  # noqa: BLE001 - the feed delivers it a moment later
                log.warning("fast path skipped notification %s", note.id, exc_info=True)

    return on_committed
