"""Erasure in the reminder flow (`user.erased`): the steps and messages that take a user's
timers, digest window and schedule rows away, and the `user.erasure.applied` it publishes.

Path of one erasure (each step keyed as named):

    gate (by a hash of the user id)      records the erased user; from then on drops every
        │                                task event of that user (no resurrection), and a
        │                                repeated `user.erased` with the same erasure id
        ▼
    timers (broadcast to every shard)    each shard deletes the user's tasks (the shard
        │                                does not know which it holds: it scans its own)
        ▼ one ack per shard
    acks (by erasure id)                 waits for every shard's ack
        ▼
    digests (by user id)                 discards the user's open window
        ▼
    ErasureDone -> read model (rows deleted, `erased_users` row) and
                   `user.erasure.applied` on taskflow.reminders (id from erasure id + service)

Why a broadcast and not a user -> tasks index: the index would be a second state per user
touched by every task event (memory and a stateful step on the hot path, for a rare
event); the broadcast costs one item per shard, once per erasure. Why the gate and not an
erased set per shard: the set would be copied into every shard. Bytewax recovery is
at-least-once: a replay repeats the same deletions and the same event id, so the erasure
takes effect once.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.operators import StatefulLogic

from events.codec import Envelope, encode
from events.payloads import UserErased, UserErasureApplied
from reminders.ports import ErasedUser

if TYPE_CHECKING:  # logic.py imports this module (the digest step handles erasures)
    from pipelines.reminders.logic import TaskInput

SERVICE = "reminders"
# Changing it needs a fresh recovery directory (like the timer shard count).
GATE_SHARDS = 64
# Namespace of the applied event's id: uuid5(EVENT_IDS, "user.erasure.applied/<id>/<service>").
EVENT_IDS = uuid.UUID("0c3f6a53-2a0e-4c55-9d8e-6f2b7c1d9a41")


@dataclass(frozen=True, slots=True)
class ErasureInput:
    """A decoded `user.erased`."""

    user_id: str
    erasure: UserErased
    traceparent: str | None
    event_type: str = UserErased.event_type

    @property
    def erasure_id(self) -> str:
        return str(self.erasure.erasure_id)


@dataclass(frozen=True, slots=True)
class ShardErasure:
    """The erasure as one timer shard receives it (with that shard's key, for the ack)."""

    erasure: ErasureInput
    shard: str


@dataclass(frozen=True, slots=True)
class ErasureAck:
    erasure: ErasureInput
    shard: str


@dataclass(frozen=True, slots=True)
class ErasureDone:
    """Every part of the flow has let go of the user: store and publish."""

    erasure: ErasureInput


def gate_of(user_id: str) -> str:
    """The gate key of a user (stable across processes)."""
    return f"g{zlib.crc32(user_id.encode()) % GATE_SHARDS}"


def user_of(item: TaskInput | ErasureInput) -> str:
    return item.user_id if isinstance(item, ErasureInput) else item.task.user_id


def applied_event_id(erasure_id: uuid.UUID | str, service: str = SERVICE) -> str:
    return str(uuid.uuid5(EVENT_IDS, f"user.erasure.applied/{erasure_id}/{service}"))


GateState = dict[str, str]  # erased user id -> erasure id


class GateLogic(StatefulLogic["TaskInput | ErasureInput", "TaskInput | ErasureInput", GateState]):
    """Keyed by `gate_of(user)`: the erased users of this gate, kept for good."""

    def __init__(self, resume: GateState | None) -> None:
        self.erased: GateState = dict(resume or {})

    def on_item(
        self, value: TaskInput | ErasureInput
    ) -> tuple[list[TaskInput | ErasureInput], bool]:
        user = user_of(value)
        if isinstance(value, ErasureInput):
            if self.erased.get(user) == value.erasure_id:
                return [], StatefulLogic.RETAIN  # the same erasure again: applied already
            self.erased[user] = value.erasure_id
            return [value], StatefulLogic.RETAIN
        if user in self.erased:
            return [], StatefulLogic.RETAIN  # arrived after the erasure: arms nothing
        return [value], not self.erased

    def snapshot(self) -> GateState:
        return dict(self.erased)


AckState = tuple[ErasureInput, frozenset[str]]


class AckLogic(StatefulLogic[ErasureAck, ErasureInput, AckState]):
    """Keyed by erasure id: passes the erasure on once every shard has acknowledged it."""

    def __init__(self, resume: AckState | None, shards: int) -> None:
        self.shards = shards
        self.erasure: ErasureInput | None = resume[0] if resume else None
        self.acked: set[str] = set(resume[1]) if resume else set()

    def on_item(self, value: ErasureAck) -> tuple[list[ErasureInput], bool]:
        self.erasure = value.erasure
        self.acked.add(value.shard)
        if len(self.acked) >= self.shards:
            return [value.erasure], StatefulLogic.DISCARD
        return [], StatefulLogic.RETAIN

    def snapshot(self) -> AckState:
        assert self.erasure is not None  # noqa: S101 - discarded before any item otherwise
        return (self.erasure, frozenset(self.acked))


def erased_user_op(done: ErasureDone) -> ErasedUser:
    e = done.erasure
    return ErasedUser(e.user_id, e.erasure_id, e.erasure.requested_at)


def erasure_message(
    topic: str, done: ErasureDone, now: datetime
) -> KafkaSinkMessage[bytes | None, bytes | None]:
    """`user.erasure.applied` (service "reminders"), keyed by the user id."""
    e = done.erasure
    payload = UserErasureApplied(
        user_id=e.user_id, erasure_id=e.erasure.erasure_id, service=SERVICE,
        outcome="completed", applied_at=now,
    )  # fmt: skip
    envelope = Envelope(
        data=payload, source="/taskflow/reminders", subject=e.user_id, user_id=e.user_id,
        id=applied_event_id(e.erasure_id), time=now, traceparent=e.traceparent,
    )  # fmt: skip
    headers = [("ce_type", payload.event_type.encode())]
    if e.traceparent:
        headers.append(("traceparent", e.traceparent.encode()))
    return KafkaSinkMessage(e.user_id.encode(), encode(envelope), topic=topic, headers=headers)
