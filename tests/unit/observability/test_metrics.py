from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from observability.metrics import (
    OFFSET_INVALID,
    AuditMetrics,
    BreakerState,
    ChannelMetrics,
    ConsumerLagMetrics,
    HttpMetrics,
    MessagingMetrics,
    OutboxMetrics,
    ReminderMetrics,
    WebSocketMetrics,
    consumer_lag,
    family,
    new_registry,
)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_every_helper_builds_twice_on_one_registry_and_names_follow_the_scheme() -> None:
    registry = CollectorRegistry()
    helpers = (
        HttpMetrics,
        MessagingMetrics,
        ConsumerLagMetrics,
        OutboxMetrics,
        ReminderMetrics,
        WebSocketMetrics,
        ChannelMetrics,
        AuditMetrics,
    )
    for helper in helpers:
        helper(registry)
        helper(registry)  # a second component of the same app: no "Duplicated timeseries"
    names = {fam.name for fam in registry.collect()}
    assert names and all(name.startswith("taskflow_") for name in names)
    for fam in registry.collect():
        if fam.type == "histogram":
            assert fam.name.endswith("_seconds"), fam.name


def test_family_refuses_a_clash_of_kinds() -> None:
    registry = CollectorRegistry()
    family(registry, Counter, "taskflow_x", "x")
    with pytest.raises(TypeError):
        family(registry, Gauge, "taskflow_x", "x")


def test_registries_are_independent() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    MessagingMetrics(a).event_produced("taskflow.tasks", "com.taskflow.task.created")
    MessagingMetrics(b)
    key = (
        "taskflow_events_produced_total",
        (("topic", "taskflow.tasks"), ("type", "com.taskflow.task.created")),
    )
    assert _samples(a)[key] == 1
    assert key not in _samples(b)


def test_messaging_values() -> None:
    registry = CollectorRegistry()
    m = MessagingMetrics(registry)
    m.event_consumed("taskflow.tasks", "t", 0.02)
    m.event_consumed("taskflow.tasks", "t")
    m.dead_letter("taskflow.tasks", "decode")
    m.produce_failed("taskflow.notifications")
    s = _samples(registry)
    lt = (("topic", "taskflow.tasks"), ("type", "t"))
    assert s[("taskflow_events_consumed_total", lt)] == 2
    assert s[("taskflow_event_processing_seconds_count", lt)] == 1
    assert s[("taskflow_event_processing_seconds_bucket", (("le", "0.025"), *lt))] == 1
    assert (
        s[("taskflow_dlq_messages_total", (("reason", "decode"), ("topic", "taskflow.tasks")))] == 1
    )
    assert s[("taskflow_produce_errors_total", (("topic", "taskflow.notifications"),))] == 1


def test_domain_values() -> None:
    registry = CollectorRegistry()
    OutboxMetrics(registry).published("com.taskflow.task.created", 0.3)
    ReminderMetrics(registry).fire(1.5)
    ChannelMetrics(registry).breaker_state("email", BreakerState.OPEN)
    ChannelMetrics(registry).attempt("email", "failed", 0.1)
    AuditMetrics(registry).verified(False, 1_700_000_000.0)
    s = _samples(registry)
    assert s[("taskflow_outbox_published_total", (("type", "com.taskflow.task.created"),))] == 1
    assert s[("taskflow_reminders_lateness_seconds_bucket", (("le", "1.0"),))] == 0
    assert s[("taskflow_reminders_lateness_seconds_bucket", (("le", "2.5"),))] == 1
    assert s[("taskflow_reminders_fired_total", ())] == 1
    assert s[("taskflow_channel_breaker_state", (("channel", "email"),))] == 2
    assert (
        s[("taskflow_channel_deliveries_total", (("channel", "email"), ("outcome", "failed")))] == 1
    )
    assert s[("taskflow_audit_verify_ok", ())] == 0
    assert s[("taskflow_audit_verify_timestamp_seconds", ())] == 1_700_000_000.0


def test_new_registry_has_process_metrics() -> None:
    names = {fam.name for fam in new_registry().collect()}
    assert "python_info" in names
    assert any(name.startswith("python_gc") for name in names)


@dataclass
class _TP:
    topic: str
    partition: int
    offset: int = OFFSET_INVALID


class FakeConsumer:
    """Committed offsets and watermarks as a broker would report them."""

    def __init__(
        self, committed: dict[tuple[str, int], int], marks: dict[tuple[str, int], tuple[int, int]]
    ) -> None:
        self._committed = committed
        self._marks = marks

    def committed(self, partitions: list[Any], timeout: float = -1) -> list[Any]:
        return [
            _TP(p.topic, p.partition, self._committed.get((p.topic, p.partition), OFFSET_INVALID))
            for p in partitions
        ]

    def get_watermark_offsets(
        self, partition: Any, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        assert cached is False  # a cached high watermark would hide lag
        return self._marks[(partition.topic, partition.partition)]


def test_consumer_lag_from_committed_and_watermarks() -> None:
    consumer = FakeConsumer(
        committed={("t", 0): 40, ("t", 1): 10},
        marks={("t", 0): (0, 100), ("t", 1): (0, 10), ("t", 2): (5, 25)},
    )
    lags = consumer_lag(consumer, [_TP("t", 0), _TP("t", 1), _TP("t", 2)])
    # Nothing committed on partition 2: everything retained counts (25 - 5).
    assert lags == {("t", 0): 60, ("t", 1): 0, ("t", 2): 20}
    registry = CollectorRegistry()
    ConsumerLagMetrics(registry).update("taskflow-notify", lags)
    s = _samples(registry)
    key = (
        "taskflow_consumer_lag_messages",
        (("group", "taskflow-notify"), ("partition", "0"), ("topic", "t")),
    )
    assert s[key] == 60


def test_consumer_lag_never_negative() -> None:
    # Tansu can report a high watermark below the committed offset.
    consumer = FakeConsumer(committed={("t", 0): 12}, marks={("t", 0): (0, 10)})
    assert consumer_lag(consumer, [_TP("t", 0)]) == {("t", 0): 0}
