"""Service metrics, refreshed from the store when scraped: what the dataflow wrote, its lag
(high watermark minus the chain head's offset), dead letters, write latency, last verify.

Lag is computed from offsets committed to PostgreSQL against Kafka high watermarks; on
Tansu the high watermark is unreliable (tech-notes.md), so the figure is only exact on
a real Kafka cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from audit_store.verify import VerifyReport


class AuditMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.entries = Gauge(
            "taskflow_audit_entries",
            "Entries stored per chain (the chain's length)",
            ["chain"],
            registry=registry,
        )
        self.entries_total = Gauge(
            "taskflow_audit_entries_written", "Entries stored in all chains", registry=registry
        )
        self.write_latency = Gauge(
            "taskflow_audit_write_latency_seconds",
            "Latest batch: seconds from Kafka append time to commit in the store",
            ["chain"],
            registry=registry,
        )
        self.lag = Gauge(
            "taskflow_audit_dataflow_lag",
            "Messages not yet stored per source partition",
            ["chain"],
            registry=registry,
        )
        self.dlq = Gauge(
            "taskflow_audit_dlq_messages",
            "Messages the dataflow sent to the DLQ",
            registry=registry,
        )
        self.verify_ok = Gauge(
            "taskflow_audit_verify_ok", "1 if the last verification passed", registry=registry
        )
        self.verify_checked = Gauge(
            "taskflow_audit_verify_checked",
            "Entries checked by the last verification",
            registry=registry,
        )
        self.verify_time = Gauge(
            "taskflow_audit_verify_timestamp_seconds",
            "When the last verification ran",
            registry=registry,
        )
        self.verify_ok.set(float("nan"))

    def record_verify(self, report: VerifyReport, at: float) -> None:
        self.verify_ok.set(1 if report.ok else 0)
        self.verify_checked.set(report.checked)
        self.verify_time.set(at)

    async def refresh(self, pool: asyncpg.Pool, watermarks: WatermarkReader | None) -> None:
        heads = await pool.fetch(
            "SELECT chain_id, seq, source_topic, source_partition, last_offset, dlq_count,"
            " last_latency_s FROM audit_chain_heads"
        )
        self.entries_total.set(sum(h["seq"] for h in heads))
        self.dlq.set(sum(h["dlq_count"] for h in heads))
        for head in heads:
            self.entries.labels(head["chain_id"]).set(head["seq"])
            if head["last_latency_s"] is not None:
                self.write_latency.labels(head["chain_id"]).set(head["last_latency_s"])
        if watermarks is not None:
            sources = [
                (h["chain_id"], h["source_topic"], h["source_partition"], h["last_offset"])
                for h in heads
                if h["source_partition"] is not None
                and h["last_offset"] >= 0
                and h["source_topic"] != "audit-service"
            ]
            highs = await asyncio.to_thread(watermarks.highs, [(t, p) for _, t, p, _ in sources])
            for (chain, _, _, last), high in zip(sources, highs, strict=True):
                if high is not None:
                    self.lag.labels(chain).set(max(0, high - last - 1))


class WatermarkReader:
    """High watermarks through a group-less consumer (it never subscribes or commits)."""

    def __init__(self, config: dict[str, Any], timeout: float = 2.0) -> None:
        self._consumer = Consumer(config | {"group.id": "taskflow-audit-metrics"})
        self._timeout = timeout

    def highs(self, partitions: list[tuple[str, int]]) -> list[int | None]:
        result: list[int | None] = []
        for topic, partition in partitions:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self._timeout
                )
                result.append(int(high))
            except Exception:  # noqa: BLE001 - a missing figure, not a failed scrape
                result.append(None)
        return result

    def check(self) -> None:
        self._consumer.list_topics(timeout=self._timeout)

    def close(self) -> None:
        self._consumer.close()


WatermarkFactory = Callable[[], WatermarkReader]
