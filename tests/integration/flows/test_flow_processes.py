"""Each dataflow process, started as `taskflow up` starts it (`python -m pipelines <flow>`,
which becomes `python -m bytewax.run`), is wired by `runtime.flow`: process metrics on its
own port under its own service name, JSON log lines naming it (the reminder flow's with the
trace id of the task event that armed a reminder), and SIGTERM stops it promptly at its
last snapshot, from which a restart loses nothing."""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from deploy.broker import free_port
from events.kafka import KafkaSettings
from tests.integration.audit.support import produce
from tests.integration.audit.test_flow import mixed_events
from tests.integration.flows.conftest import Flow, scrape
from tests.integration.reminders.harness import TRACEPARENT, TaskWriter

pytestmark = pytest.mark.integration

TRACE_ID = TRACEPARENT.split("-")[1]
PROCESS_FAMILIES = ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info")


def json_lines(flow: Flow) -> list[dict[str, Any]]:
    return [json.loads(line) for line in flow.lines() if line.startswith("{")]


def wait_for_log(flow: Flow, match: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in json_lines(flow) if match(e)]
        if found:
            return found[0]
        assert flow.process.poll() is None, f"{flow.name} exited:\n{flow.tail()}"
        assert time.monotonic() < deadline, f"no such log line from {flow.name}:\n{flow.tail()}"
        time.sleep(0.1)


def common_env(kafka: KafkaSettings) -> dict[str, str]:
    return {
        "TASKFLOW_ENV": "local",
        "TASKFLOW_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TASKFLOW_KAFKA_TOPIC_NAMESPACE": kafka.topic_namespace,
        "TASKFLOW_LOG_FORMAT": "json",
        "OTEL_TRACES_EXPORTER": "none",
    }


def assert_observed(flow: Flow, port: int, service: str) -> None:
    text = scrape(port, time.monotonic() + 60, flow)
    for family in PROCESS_FAMILIES:
        assert f"\n{family}" in f"\n{text}", f"{service} does not expose {family}"
    started = wait_for_log(flow, lambda e: "starting" in e.get("message", ""), 10)
    assert started["service"] == service
    assert all(e["service"] == service for e in json_lines(flow)), "a line names another process"


def assert_stops_on_sigterm(flow: Flow) -> None:
    code, seconds = flow.stop(signal.SIGTERM)
    assert code in (0, 130), f"exit {code}:\n{flow.tail()}"
    assert seconds < 5, f"took {seconds:.1f}s to stop"
    assert any("SIGTERM" in e.get("message", "") for e in json_lines(flow)), flow.tail()


async def test_the_reminder_flow_is_observed_logs_trace_ids_and_stops_on_sigterm(
    kafka_settings: KafkaSettings, reminders_url: str, start_flow: Any
) -> None:
    port = free_port()
    flow = start_flow(
        "reminders-flow",
        common_env(kafka_settings)
        | {
            "TASKFLOW_REMINDERS_DATABASE_URL": reminders_url,
            "TASKFLOW_REMINDERS_FLOW_METRICS_PORT": str(port),
            "TASKFLOW_REMINDERS_DIGEST_STARTUP": "PT0S",
        },
    )
    assert_observed(flow, port, "taskflow-reminder-flow")

    task = uuid.uuid4()
    due = datetime.now(UTC) + timedelta(seconds=2)
    TaskWriter(kafka_settings).send("task.created", task, user="u1", version=1, due_at=due)
    fired = wait_for_log(
        flow, lambda e: e.get("taskflow_task_id") == str(task) and e.get("trace_id"), 30
    )
    assert fired["trace_id"] == TRACE_ID  # the trace of the task event that armed it
    assert len(fired["span_id"]) == 16

    assert_stops_on_sigterm(flow)


async def count(url: str) -> tuple[int, int]:
    """(entries, event ids stored more than once)."""
    conn = await asyncpg.connect(url)
    try:
        total = int(await conn.fetchval("SELECT count(*) FROM audit_entries"))
        dupes = int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT event_id FROM audit_entries"
                " GROUP BY 1 HAVING count(*) > 1) d"
            )
        )
    finally:
        await conn.close()
    return total, dupes


async def test_the_audit_flow_is_observed_and_a_sigterm_restart_loses_nothing(
    kafka_settings: KafkaSettings, audit_url: str, start_flow: Any, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(audit_url)
    await conn.execute("TRUNCATE audit_entries, audit_chain_heads RESTART IDENTITY")
    await conn.close()
    events = 6000
    produce(kafka_settings, mixed_events(kafka_settings, events))
    port = free_port()
    env = common_env(kafka_settings) | {
        "TASKFLOW_AUDIT_DATABASE_URL": audit_url,
        "TASKFLOW_AUDIT_FLOW_METRICS_PORT": str(port),
        "TASKFLOW_AUDIT_FLOW_BATCH_SIZE": "50",
        "TASKFLOW_AUDIT_FLOW_WORKERS": "2",
    }
    flow = start_flow("audit-flow", env)
    assert_observed(flow, port, "taskflow-audit-flow")
    deadline = time.monotonic() + 60
    while (await count(audit_url))[0] == 0:
        assert flow.process.poll() is None and time.monotonic() < deadline, flow.tail()
        time.sleep(0.05)
    assert_stops_on_sigterm(flow)
    at_stop = (await count(audit_url))[0]

    # Restart from the same recovery store, this time to the end of the topics.
    again = start_flow("audit-flow", env | {"TASKFLOW_AUDIT_FLOW_TAIL": "false"}, "again.log")
    assert again.process.wait(120) == 0, again.tail()
    assert 0 < at_stop <= events
    assert await count(audit_url) == (events, 0)
