"""The one SQL migration runner on databases the three earlier copies left behind, and the
advisory lock around every migrator (SQL files and the task service's Tortoise migrations)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import asyncpg
import pytest

from audit_store.db import migrate as audit_migrate
from notify_ws.db import migrate as notify_migrate
from reminders.db import migrate as reminders_migrate
from runtime.migrations import TableShape, advisory_lock_at, migrate, migration_files
from task_api.cli import MIGRATION_LOCK_KEY

pytestmark = pytest.mark.integration

SAMPLE = "tests.integration.runtime.sample_migrations"
LOCK = 0x5E57

# The tables the earlier copies created, verbatim: audit and notify...
LEGACY_TEXT_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)
# ...and reminders.
LEGACY_NUMBERED_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())"
)
CreateDatabase = Callable[[str], Awaitable[str]]


async def _apply_the_old_way(url: str, package: str, shape: TableShape, upto: int) -> None:
    """What the earlier copies did: their table, then each file's SQL and its record."""
    conn = await asyncpg.connect(url)
    try:
        if shape is TableShape.TEXT:
            await conn.execute(LEGACY_TEXT_TABLE)
        else:
            await conn.execute(LEGACY_NUMBERED_TABLE)
        for m in migration_files(package)[:upto]:
            async with conn.transaction():
                await conn.execute(m.sql)
                if shape is TableShape.TEXT:
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", m.version
                    )
                else:
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        m.number,
                        m.name,
                    )
    finally:
        await conn.close()


async def _fetch(url: str, sql: str, *args: object) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def _version_type(url: str) -> str:
    rows = await _fetch(
        url,
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_name = 'schema_migrations' AND column_name = 'version'",
    )
    return str(rows[0][0])


@pytest.mark.parametrize(
    ("legacy", "new_table", "column", "recorded"),
    [
        (TableShape.TEXT, TableShape.NUMBERED, "text", [("0001_first",), ("0002_second",)]),
        (TableShape.NUMBERED, TableShape.TEXT, "integer", [(1, "first"), (2, "second")]),
    ],
)
async def test_a_legacy_table_keeps_its_shape_and_only_new_files_are_applied(
    create_database: CreateDatabase,
    legacy: TableShape,
    new_table: TableShape,
    column: str,
    recorded: list[tuple[Any, ...]],
) -> None:
    # `new_table` is the other shape: the existing column decides, not the default.
    url = await create_database("legacymig")
    await _apply_the_old_way(url, SAMPLE, legacy, upto=1)

    applied = await migrate(url, SAMPLE, LOCK, new_table=new_table)

    assert [m.version for m in applied] == ["0002_second"]  # 0001 would fail if re-run
    assert await _version_type(url) == column
    rows = await _fetch(url, "SELECT * FROM schema_migrations ORDER BY version")
    assert [row[: len(recorded[0])] for row in rows] == recorded
    assert await migrate(url, SAMPLE, LOCK, new_table=new_table) == []


SERVICES = [
    pytest.param(audit_migrate.migrate, "audit_store.db.migrations", TableShape.TEXT, id="audit"),
    pytest.param(notify_migrate.migrate, "notify_ws.db.migrations", TableShape.TEXT, id="notify"),
    pytest.param(
        reminders_migrate.migrate_url, "reminders.db.migrations", TableShape.NUMBERED, id="remind"
    ),
]


@pytest.mark.parametrize(("service_migrate", "package", "shape"), SERVICES)
async def test_a_deployed_service_database_is_not_migrated_again(
    create_database: CreateDatabase,
    service_migrate: Callable[[str], Awaitable[list[Any]]],
    package: str,
    shape: TableShape,
) -> None:
    url = await create_database("deployedmig")
    await _apply_the_old_way(url, package, shape, upto=len(migration_files(package)))
    before = await _fetch(url, "SELECT * FROM schema_migrations ORDER BY version")

    assert await service_migrate(url) == []
    assert await _fetch(url, "SELECT * FROM schema_migrations ORDER BY version") == before


@pytest.mark.parametrize(("service_migrate", "package", "shape"), SERVICES)
async def test_a_fresh_service_database_gets_the_shape_its_earlier_code_reads(
    create_database: CreateDatabase,
    service_migrate: Callable[[str], Awaitable[list[Any]]],
    package: str,
    shape: TableShape,
) -> None:
    url = await create_database("freshmig")
    versions = [m.version for m in migration_files(package)]
    numbers = [m.number for m in migration_files(package)]

    assert await service_migrate(url) == (versions if shape is TableShape.TEXT else numbers)
    assert await _version_type(url) == ("text" if shape is TableShape.TEXT else "integer")


async def _waiting_for(url: str, key: int, count: int) -> None:
    """Return once `count` sessions wait for advisory lock `key` in `url`'s database."""
    sql = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid = $1 AND objid = $2"
    )
    for _ in range(600):
        if (await _fetch(url, sql, key >> 32, key & 0xFFFFFFFF))[0][0] == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} migrators never waited for lock {key:#x}")


async def test_concurrent_sql_migrators_take_turns(create_database: CreateDatabase) -> None:
    url = await create_database("concsql")
    async with advisory_lock_at(url, LOCK):  # both start together once this is released
        first = asyncio.create_task(migrate(url, SAMPLE, LOCK))
        second = asyncio.create_task(migrate(url, SAMPLE, LOCK))
        await _waiting_for(url, LOCK, 2)
    results = await asyncio.gather(first, second)

    assert sorted(len(r) for r in results) == [0, 2]
    assert await _fetch(url, "SELECT version FROM schema_migrations ORDER BY version") == [
        ("0001_first",),
        ("0002_second",),
    ]


async def test_concurrent_task_service_migrations_apply_each_migration_once(
    create_database: CreateDatabase,
) -> None:
    url = await create_database("conctasks")
    env = os.environ | {"TASKFLOW_TASK_API_DATABASE_URL": url, "OTEL_TRACES_EXPORTER": "none"}
    command = [sys.executable, "-m", "deploy.cli", "migrate", "task-api"]
    async with advisory_lock_at(url, MIGRATION_LOCK_KEY):
        procs = [
            await asyncio.create_subprocess_exec(
                *command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        await _waiting_for(url, MIGRATION_LOCK_KEY, 2)  # both reached the lock
    outputs = [await asyncio.wait_for(p.communicate(), 120) for p in procs]

    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-3000:]
        assert out.decode().strip() == "migrated task-api"
    shipped = sorted(
        p.name.removesuffix(".py")
        for p in resources.files("task_api.db.migrations").iterdir()
        if p.name[:4].isdigit() and p.name.endswith(".py")
    )
    rows = await _fetch(url, "SELECT app, name FROM tortoise_migrations ORDER BY name")
    assert rows == [("tasks", name) for name in shipped]
