"""Which fields of an event's `data` are personal, and how they are split off and put back.

Personal: the human words a user typed or was sent (task title, description and tags,
reminder titles, notification title and body, delivery errors, which may name an email
address or a webhook URL). Everything else (type, times, ids, versions, status, channel)
stays in clear, so an erased user's entries still say what happened and when.
"""

from __future__ import annotations

from typing import Any

from events.payloads import TASK_EVENTS

ERASED = "[erased]"

# A spec maps a key to True (the value is personal), to a nested spec (an object), or to
# a one-element list holding the spec of each element of an array of objects.
Spec = dict[str, Any]
_TASK: Spec = {"title": True, "description": True, "tags": True}
PERSONAL: dict[str, Spec] = {
    **{kind.event_type: _TASK for kind in TASK_EVENTS},
    "task.reminder": {"title": True},
    "reminder.digest": {"items": [{"title": True}]},
    "notification.created": {"notification": {"title": True, "body": True}},
    "notification.failed": {"error": True},
}


def has_personal(event_type: str) -> bool:
    return event_type in PERSONAL


def split(event_type: str, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(clear part, personal part or None): personal values are moved out, not copied."""
    spec = PERSONAL.get(event_type)
    if spec is None:
        return data, None
    clear, personal = _split(spec, data)
    return clear, personal or None


def _split(spec: Spec, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    clear, personal = dict(data), {}
    for key, sub in spec.items():
        value = clear.get(key)
        if value is None:
            continue
        if sub is True:
            personal[key] = clear.pop(key)
        elif isinstance(sub, list) and isinstance(value, list):
            parts = [_split(sub[0], v) if isinstance(v, dict) else (v, {}) for v in value]
            clear[key] = [c for c, _ in parts]
            if any(p for _, p in parts):
                personal[key] = [p for _, p in parts]
        elif isinstance(sub, dict) and isinstance(value, dict):
            inner, found = _split(sub, value)
            clear[key] = inner
            if found:
                personal[key] = found
    return clear, personal


def merge(clear: dict[str, Any], personal: dict[str, Any]) -> dict[str, Any]:
    """The original data: `clear` with the personal values put back."""
    out = dict(clear)
    for key, value in personal.items():
        mine = out.get(key)
        if isinstance(value, dict) and isinstance(mine, dict):
            out[key] = merge(mine, value)
        elif isinstance(value, list) and isinstance(mine, list):
            out[key] = [
                merge(c, p) if isinstance(c, dict) and isinstance(p, dict) else c
                for c, p in zip(mine, value, strict=False)
            ]
        else:
            out[key] = value
    return out


def mask(event_type: str, clear: dict[str, Any]) -> dict[str, Any]:
    """`clear` with ERASED wherever a personal value was taken out (and is now unreadable)."""
    spec = PERSONAL.get(event_type)
    return _mask(spec, clear) if spec is not None else clear


def _mask(spec: Spec, clear: dict[str, Any]) -> dict[str, Any]:
    out = dict(clear)
    for key, sub in spec.items():
        value = out.get(key)
        if sub is True:
            if key not in out:
                out[key] = ERASED
        elif isinstance(sub, list) and isinstance(value, list):
            out[key] = [_mask(sub[0], v) if isinstance(v, dict) else v for v in value]
        elif isinstance(sub, dict) and isinstance(value, dict):
            out[key] = _mask(sub, value)
    return out
