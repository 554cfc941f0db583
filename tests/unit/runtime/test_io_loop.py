"""Both dataflows' sinks do their database I/O on uvloop (`runtime.flow.new_io_loop`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
import uvloop
from bytewax.connectors.kafka import KafkaSourceMessage

from audit_store.ingest import WriteResult
from audit_store.records import AuditRecord, Poison
from pipelines.audit import to_item
from pipelines.audit.sink import AuditStoreSink
from pipelines.reminders import store
from reminders.ports import ReadModel, SentDelivery, StoreOp


def running_loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


class LoopRecordingWriter:
    """An audit batch writer that notes which loop each call ran on."""

    def __init__(self) -> None:
        self.loops: list[type[asyncio.AbstractEventLoop]] = []

    async def write(self, items: Sequence[AuditRecord | Poison]) -> WriteResult:
        self.loops.append(running_loop_type())
        return WriteResult()

    async def close(self) -> None:
        self.loops.append(running_loop_type())


class LoopRecordingReadModel:
    """A reminder read model that notes which loop each call ran on."""

    def __init__(self) -> None:
        self.loops: list[type[asyncio.AbstractEventLoop]] = []

    async def write(self, ops: Sequence[StoreOp]) -> None:
        self.loops.append(running_loop_type())

    async def purge(self, now: datetime, keep: timedelta) -> int:
        return 0

    async def record_sent(self, deliveries: Sequence[SentDelivery]) -> None:
        self.loops.append(running_loop_type())

    async def last_sent(self, span: timedelta) -> list[SentDelivery]:
        return []

    async def purge_sent(self, now: datetime, keep: timedelta) -> int:
        return 0

    async def close(self) -> None:
        self.loops.append(running_loop_type())


def test_the_audit_sink_writes_on_uvloop() -> None:
    writer = LoopRecordingWriter()

    async def open_writer() -> LoopRecordingWriter:
        writer.loops.append(running_loop_type())
        return writer

    partition = AuditStoreSink(open_writer, to_item).build("store", 0, 1)
    poison = KafkaSourceMessage[bytes | None, bytes | None](key=None, value=None, topic="t")
    partition.write_batch([poison])
    partition.close()
    assert writer.loops == [uvloop.Loop] * 3  # open, write, close


def test_the_reminder_store_writes_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    model = LoopRecordingReadModel()

    async def open_read_model(url: str) -> ReadModel:
        model.loops.append(running_loop_type())
        return model

    monkeypatch.setattr(store, "open_read_model", open_read_model)
    partition = store.ReadModelSink("postgresql://unused").build("store", 0, 1)
    partition.write_batch([])
    partition.close()
    assert model.loops == [uvloop.Loop] * 3  # open, write, close
