"""`taskflow migrate audit`, `taskflow audit purge` and `taskflow serve audit`, as run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

from audit_store.db.pool import create_pool
from audit_store.ingest import ChainWriter
from deploy.broker import LocalBroker, free_port
from tests.integration.audit.support import ListDeadLetters, records, wait_for
from tests.unit.audit.factories import T0, event_bytes, task_payload
from webapi.auth import issue_token

TASKFLOW = str(Path(sys.executable).with_name("taskflow"))
SECRET = "c" * 40


def env(url: str, **extra: str) -> dict[str, str]:
    return (
        dict(os.environ)
        | {
            "TASKFLOW_AUDIT_DATABASE_URL": url,
            "TASKFLOW_JWT_SECRET": SECRET,
            "OTEL_TRACES_EXPORTER": "none",
        }
        | extra
    )


async def test_migrate_then_purge_from_the_command_line(
    create_database: Callable[[str], Awaitable[str]],
) -> None:
    url = await create_database("auditcli")
    done = subprocess.run(
        [TASKFLOW, "migrate", "audit"], env=env(url), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    again = subprocess.run(
        [TASKFLOW, "migrate", "audit"], env=env(url), capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr  # idempotent

    pool = await create_pool(url)
    try:
        old = [(event_bytes(task_payload(user="alice"), "alice"), "alice") for _ in range(3)]
        await ChainWriter(pool, ListDeadLetters(), lambda: T0).write(records(old))
        purge = subprocess.run(
            [TASKFLOW, "audit", "purge"],
            env=env(url, TASKFLOW_AUDIT_RETENTION_DAYS='{"task.": 1}'),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert purge.returncode == 0, purge.stderr
        assert "purged 3 entries" in purge.stdout
        assert (
            await pool.fetchval("SELECT count(*) FROM audit_entries WHERE purged_at IS NOT NULL")
            == 3
        )
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM audit_entries WHERE type = 'audit.purged' AND user_id = 'cli'"
            )
            == 1
        )
    finally:
        await pool.close()


async def test_serve_answers_probes_and_stops_on_sigterm(
    audit_db: str, pool: asyncpg.Pool, broker: LocalBroker
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [TASKFLOW, "serve", "audit", "--port", str(port)],
        env=env(audit_db, TASKFLOW_KAFKA_BOOTSTRAP=broker.bootstrap),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=2) as client:

            def up() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    return False

            wait_for(up, 30, "the audit service")
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert set(ready.json()["checks"]) == {"database"}  # Kafka is not a readiness need
            token = issue_token(SECRET, "ops", ("operator",))
            verify = client.get(
                "/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}
            )
            assert verify.status_code == 200 and verify.json()["ok"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        if proc.stderr:
            proc.stderr.close()
    assert code == 0
