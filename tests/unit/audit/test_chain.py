"""Hash chaining is deterministic and covers every stored field."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from audit_store.chain import GENESIS, Entry, canonical_data, entry_hash
from tests.unit.audit.factories import T0

ENTRY = Entry(
    chain_id="taskflow.tasks/0",
    chain_seq=1,
    event_id="01900000-0000-7000-8000-000000000001",
    type="task.created",
    source="/taskflow/task-service",
    subject="t1",
    user_id="alice",
    task_id="t1",
    occurred_at=T0,
    recorded_at=T0 + timedelta(seconds=1),
    data_json=canonical_data({"title": "buy milk", "version": 1}),
    trace_id="0af7651916cd43dd8448eb211c80319c",
    snapshot=False,
    source_offset=0,
)


def test_the_hash_is_deterministic_and_hex() -> None:
    digest = entry_hash(GENESIS, ENTRY)
    assert digest == entry_hash(GENESIS, dataclasses.replace(ENTRY))
    assert len(digest) == 64 and int(digest, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": "taskflow.tasks/1"},
        {"chain_seq": 2},
        {"event_id": "other"},
        {"type": "task.updated"},
        {"source": "/elsewhere"},
        {"subject": "t2"},
        {"user_id": "mallory"},
        {"task_id": None},
        {"occurred_at": T0 + timedelta(microseconds=1)},
        {"recorded_at": T0},
        {"data_json": canonical_data({"title": "buy milk", "version": 2})},
        {"trace_id": None},
        {"snapshot": True},
        {"source_offset": 1},
    ],
)
def test_every_field_is_covered(change: dict[str, object]) -> None:
    assert entry_hash(GENESIS, dataclasses.replace(ENTRY, **change)) != entry_hash(GENESIS, ENTRY)  # type: ignore[arg-type]


def test_the_previous_hash_is_covered() -> None:
    assert entry_hash("f" * 64, ENTRY) != entry_hash(GENESIS, ENTRY)


def test_canonical_data_ignores_key_order_and_time_zone_spelling() -> None:
    assert canonical_data({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == '{"a":[1,{"x":1,"y":2}],"b":1}'
    from datetime import timezone

    same_instant = ENTRY.occurred_at.astimezone(timezone(timedelta(hours=5)))
    assert entry_hash(GENESIS, dataclasses.replace(ENTRY, occurred_at=same_instant)) == entry_hash(
        GENESIS, ENTRY
    )
