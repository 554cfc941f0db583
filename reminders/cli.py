"""Entry points `deploy/cli.py` calls: `taskflow serve reminders`, `taskflow migrate`."""

from __future__ import annotations

from urllib.parse import urlsplit

from reminders.db.migrate import migrate_url
from reminders.settings import ReminderSettings
from runtime.database import ensure_database, with_database
from runtime.servers import ServerOptions
from runtime.service import ServiceSpec, run_service


def serve(host: str | None = None, port: int | None = None) -> None:
    """Run the read API until SIGINT/SIGTERM, then close connections cleanly."""
    from reminders.app import SERVICE_NAME, create_app

    settings = ReminderSettings()
    run_service(
        ServiceSpec(
            name=SERVICE_NAME,
            build_app=lambda: create_app(settings),
            options=ServerOptions(host=host or settings.host, port=port or settings.port),
        )
    )


async def migrate() -> None:
    """Create the service database if missing, then apply pending migrations."""
    url = ReminderSettings().database_url
    name = urlsplit(url).path.lstrip("/")
    if name:
        await ensure_database(with_database(url, "postgres"), name)
    await migrate_url(url)
