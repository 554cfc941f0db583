"""Versioned SQL migrations (`NNNN_name.sql` files in a package), applied once each and in
order under a PostgreSQL advisory lock; the lock alone serves migrators that are not SQL."""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE_NAME = re.compile(r"(\d{4})_(\w+)\.sql")


class MigrationError(Exception):
    """The migration files or the `schema_migrations` table are not as this runner expects."""


class TableShape(enum.Enum):
    """How `schema_migrations` records a version; deployed databases hold both shapes."""

    TEXT = "text"  # version text PRIMARY KEY: '0001_init'
    NUMBERED = "numbered"  # version integer PRIMARY KEY, name text: (1, 'init')


_CREATE_TABLE = {
    TableShape.TEXT: (
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    ),
    TableShape.NUMBERED: (
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    ),
}
_SHAPE_OF_COLUMN = {
    "text": TableShape.TEXT,
    "smallint": TableShape.NUMBERED,
    "integer": TableShape.NUMBERED,
    "bigint": TableShape.NUMBERED,
}


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str

    @property
    def version(self) -> str:
        """The file name without `.sql`, e.g. `0001_init`."""
        return f"{self.number:04d}_{self.name}"


def migration_files(package: str) -> list[Migration]:
    """Every `NNNN_name.sql` in `package`, in order."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise MigrationError(f"{package}/{entry.name}: expected NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"{package}: two migrations share a number")
    return found


@asynccontextmanager
async def advisory_lock(conn: asyncpg.Connection, key: int) -> AsyncIterator[None]:
    """Hold the session-level advisory lock `key` on `conn`, waiting for it if taken."""
    await conn.execute("SELECT pg_advisory_lock($1)", key)
    try:
        yield
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", key)


@asynccontextmanager
async def advisory_lock_at(url: str, key: int) -> AsyncIterator[None]:
    """Hold the advisory lock `key` on a connection of its own to `url`, e.g. while another
    library (Tortoise) migrates over its own connections."""
    conn = await asyncpg.connect(url)
    try:
        async with advisory_lock(conn, key):
            yield
    finally:
        await conn.close()


async def apply_migrations(
    conn: asyncpg.Connection,
    package: str,
    lock_key: int,
    *,
    new_table: TableShape = TableShape.TEXT,
) -> list[Migration]:
    """Apply the migrations of `package` not yet recorded, one transaction each; returns those
    applied. An existing `schema_migrations` keeps its shape; `new_table` is the shape of one
    created here (the shape the service's earlier migrators read, so they stay compatible)."""
    migrations = migration_files(package)
    async with advisory_lock(conn, lock_key):
        shape = await _prepare_table(conn, new_table)
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        pending = [m for m in migrations if _key(m, shape) not in done]
        for migration in pending:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await _record(conn, migration, shape)
    return pending


async def migrate(
    url: str, package: str, lock_key: int, *, new_table: TableShape = TableShape.TEXT
) -> list[Migration]:
    """Connect to `url` and apply the pending migrations of `package`."""
    conn = await asyncpg.connect(url)
    try:
        return await apply_migrations(conn, package, lock_key, new_table=new_table)
    finally:
        await conn.close()


async def _prepare_table(conn: asyncpg.Connection, new_table: TableShape) -> TableShape:
    """Create `schema_migrations` if missing; returns the shape it has."""
    await conn.execute(_CREATE_TABLE[new_table])
    column_type = await conn.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = to_regclass('schema_migrations') AND attname = 'version'"
        " AND NOT attisdropped"
    )
    shape = _SHAPE_OF_COLUMN.get(column_type)
    if shape is None:
        raise MigrationError(f"schema_migrations.version has unexpected type {column_type}")
    return shape


def _key(migration: Migration, shape: TableShape) -> str | int:
    return migration.version if shape is TableShape.TEXT else migration.number


async def _record(conn: asyncpg.Connection, migration: Migration, shape: TableShape) -> None:
    if shape is TableShape.TEXT:
        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", migration.version)
    else:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            migration.number,
            migration.name,
        )
