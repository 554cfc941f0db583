"""Issue 13 item 7: the audit dataflow scaled out as docs/deployment-guide.md ("Scaling
out a dataflow") says, two processes from settings alone, with recovery: one is killed
mid-stream, the cluster is restarted, and every event is in the store exactly once."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from audit_store.db.pool import create_pool
from audit_store.digests import Signer
from audit_store.verify import verify
from deploy.broker import free_port
from events.kafka import KafkaSettings
from runtime.flow_launch import partitions_in
from tests.integration.audit.support import produce
from tests.integration.audit.test_flow import mixed_events
from tests.integration.flows.conftest import Flow
from tests.integration.flows.test_flow_processes import common_env, count

pytestmark = pytest.mark.integration

EVENTS = 10_000


def guide_env(addresses: str, process_id: int, recovery: Path) -> dict[str, str]:
    """The recipe's variables (one set per process; only PROCESS_ID differs)."""
    return {
        "TASKFLOW_AUDIT_FLOW_ADDRESSES": addresses,
        "TASKFLOW_AUDIT_FLOW_PROCESS_ID": str(process_id),
        "TASKFLOW_AUDIT_FLOW_WORKERS": "1",
        "TASKFLOW_AUDIT_FLOW_RECOVERY_PARTITIONS": "2",
        "TASKFLOW_AUDIT_FLOW_RECOVERY_DIR": str(recovery),
    }


def start_cluster(start_flow: Any, base: dict[str, str], recovery: Path, run: str) -> list[Flow]:
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    return [
        start_flow("audit-flow", base | guide_env(addresses, i, recovery), f"{run}-p{i}.log")
        for i in range(2)
    ]


async def test_two_processes_one_killed_then_restarted_lose_nothing(
    kafka_settings: KafkaSettings, audit_url: str, start_flow: Any, tmp_path: Path
) -> None:
    pool = await create_pool(audit_url)
    await pool.execute("TRUNCATE audit_entries, audit_chain_heads RESTART IDENTITY")
    produce(kafka_settings, mixed_events(kafka_settings, EVENTS))
    recovery = tmp_path / "recovery"
    base = common_env(kafka_settings) | {
        "TASKFLOW_AUDIT_DATABASE_URL": audit_url,
        "TASKFLOW_AUDIT_FLOW_BATCH_SIZE": "100",
    }

    first = start_cluster(start_flow, base, recovery, "first")
    deadline = time.monotonic() + 90
    while (await count(audit_url))[0] < 500:
        assert all(f.process.poll() is None for f in first), [f.tail() for f in first]
        assert time.monotonic() < deadline, "the cluster wrote nothing"
        time.sleep(0.02)
    # Each process made its own share of the partitions in the shared directory.
    assert sorted(partitions_in(recovery)) == [0, 1]
    first[1].process.send_signal(signal.SIGKILL)
    first[1].process.wait(10)
    try:  # its peer loses the cluster: it stops by itself, or is stopped with the rest
        first[0].process.wait(20)
    except subprocess.TimeoutExpired:
        first[0].stop(signal.SIGTERM)
    at_kill = (await count(audit_url))[0]
    assert at_kill < EVENTS, "the kill must land mid-stream"

    again = start_cluster(start_flow, base | {"TASKFLOW_AUDIT_FLOW_TAIL": "false"}, recovery, "b")
    codes = [flow.process.wait(180) for flow in again]
    assert codes == [0, 0], [flow.tail() for flow in again]

    assert await count(audit_url) == (EVENTS, 0)
    report = await verify(pool, Signer("hmac-sha256", "k" * 40, "k1"))
    await pool.close()
    assert report.ok and report.checked == EVENTS, report.as_json()
