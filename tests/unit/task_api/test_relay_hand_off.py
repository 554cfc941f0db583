"""The relay's hand-off: which committed events it produces at once and which it leaves to
the claim, so a key's events keep their order and each goes out once."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from events.errors import PublishError
from task_api.app import _on_commit
from task_api.db.relay_store import PendingEvent
from task_api.db.written import Written, WrittenEvent, collecting, record, record_unrecorded
from task_api.metrics import TaskMetrics
from task_api.relay import OutboxRelay
from task_api.settings import TaskApiSettings


class FakeProducer:
    """Keeps what was produced, in order, with a future the test settles."""

    fatal_error = None

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.futures: list[asyncio.Future[object]] = []

    def produce(
        self, topic: str, value: bytes, key: str, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[object]:
        self.sent.append((key, value))
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def abandon(self) -> None:
        pass

    async def close(self) -> None:
        pass


def event(row_id: int, key: str = "task-1") -> PendingEvent:
    return PendingEvent(
        id=row_id,
        event_id=uuid.uuid4(),
        topic="taskflow.tasks",
        key=key,
        event_type="task.updated",
        payload=f"v{row_id}".encode(),
        headers=[("ce_type", b"task.updated")],
        created_at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
    )


def written(*events: WrittenEvent, unrecorded: bool = False) -> Written:
    return Written(events=list(events), unrecorded=unrecorded)


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def relay(producer: FakeProducer) -> OutboxRelay:
    metrics = TaskMetrics.create(CollectorRegistry())
    return OutboxRelay(lambda: producer, "postgresql://unused", metrics)  # type: ignore[arg-type, return-value]


def claim_requested(relay: OutboxRelay) -> bool:
    return relay._claim_requested  # noqa: SLF001 - what the loop will do next


async def test_an_event_with_nothing_older_goes_out_at_once(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    relay.hand_off(written(WrittenEvent(event(1))))
    assert producer.sent == [("task-1", b"v1")]
    assert not claim_requested(relay)


async def test_while_a_hand_off_waits_for_its_report_the_next_events_go_to_the_claim(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    # Under load the claim batches them: one produce request and one mark for many rows.
    relay.hand_off(written(WrittenEvent(event(1))))
    relay.hand_off(written(WrittenEvent(event(2, key="task-2"))))
    assert [value for _, value in producer.sent] == [b"v1"]
    assert claim_requested(relay)


async def test_a_confirmed_event_still_counts_as_on_its_way_until_marked(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    relay.hand_off(written(WrittenEvent(event(1))))
    producer.futures[0].set_result(object())
    await asyncio.sleep(0)  # the delivery callback runs on the loop
    relay.hand_off(written(WrittenEvent(event(2), older=(1,))))
    assert [value for _, value in producer.sent] == [b"v1", b"v2"]


async def test_an_event_behind_an_older_one_not_in_flight_is_left_to_the_claim(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    # Row 7 is unpublished and nobody here sent it (another process, or a crash): the
    # claim publishes 7 and then 8, in order.
    relay.hand_off(written(WrittenEvent(event(8), older=(7,))))
    assert producer.sent == []
    assert claim_requested(relay)


async def test_an_older_event_on_a_replaced_producer_holds_the_next_back(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    relay.hand_off(written(WrittenEvent(event(1))))
    producer.futures[0].set_result(object())
    await asyncio.sleep(0)
    replacement = FakeProducer()
    relay._producer = replacement  # type: ignore[assignment]  # noqa: SLF001 - as after a fatal error
    relay.hand_off(written(WrittenEvent(event(2), older=(1,))))
    assert replacement.sent == []  # two producers do not keep an order between them
    assert claim_requested(relay)


async def test_events_committed_while_a_claim_is_open_go_to_the_next_claim(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    relay._claiming = True  # noqa: SLF001 - a claim has its transaction open
    relay.hand_off(written(WrittenEvent(event(5))))
    assert producer.sent == []
    assert claim_requested(relay)


async def test_a_failed_delivery_goes_back_to_the_claim(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    relay.hand_off(written(WrittenEvent(event(1))))
    producer.futures[0].set_exception(PublishError("broker gone"))
    await asyncio.sleep(0)
    assert claim_requested(relay)
    # No longer on its way: the next event of the key waits for the claim too.
    relay.hand_off(written(WrittenEvent(event(2), older=(1,))))
    assert len(producer.sent) == 1


async def test_writes_right_behind_a_claim_go_to_the_next_claim(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    # Under load claims follow each other and batch; hand-offs wait for a lull.
    relay._claimed_until = time.monotonic() + 60  # noqa: SLF001 - a claim just ended
    relay.hand_off(written(WrittenEvent(event(1))))
    assert producer.sent == []
    assert claim_requested(relay)


async def test_rows_written_without_a_record_wake_the_claim(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    relay.hand_off(written(unrecorded=True))
    assert producer.sent == [] and claim_requested(relay)


async def test_a_stopping_relay_leaves_everything_to_the_next_start(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    relay.stop()
    relay.hand_off(written(WrittenEvent(event(1))))
    assert producer.sent == []


async def test_a_transaction_with_no_event_wakes_nothing(
    relay: OutboxRelay, producer: FakeProducer
) -> None:
    relay.hand_off(written())
    assert producer.sent == [] and not claim_requested(relay)


def test_only_rows_written_inside_a_collecting_block_are_recorded() -> None:
    record(event(1))  # outside: nowhere to go, and no error
    with collecting() as inner:
        record(event(2), older=(1,))
        record_unrecorded()
    record(event(3))
    assert [(item.event.id, item.older) for item in inner.events] == [(2, (1,))]
    assert inner.unrecorded


class RecordingRelay:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def hand_off(self, written: Written) -> None:
        self.calls.append("hand_off")

    def wake(self) -> None:
        self.calls.append("wake")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, ["hand_off"]),
        ({"relay_hand_off": False}, ["wake"]),
        ({"run_relay": False}, []),  # writers NOTIFY the relays elsewhere instead
    ],
)
def test_the_setting_picks_what_a_commit_does(
    settings: dict[str, bool], expected: list[str]
) -> None:
    relay = RecordingRelay()
    on_commit = _on_commit(relay, TaskApiSettings(**settings))  # type: ignore[arg-type]
    on_commit(written(WrittenEvent(event(1))))
    assert relay.calls == expected
