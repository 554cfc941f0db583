"""Entry points `deploy/cli.py` calls: `taskflow serve reminders`, `taskflow migrate`."""

from __future__ import annotations

import asyncio
import signal
from urllib.parse import urlsplit

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from deploy.database import ensure_database, with_database
from reminders.db.migrate import migrate_url
from reminders.settings import ReminderSettings


def serve(host: str | None = None, port: int | None = None) -> None:
    """Run the read API until SIGINT/SIGTERM, then close connections cleanly."""
    from reminders.app import create_app

    settings = ReminderSettings()
    config = Config()
    config.bind = [f"{host or settings.host}:{port or settings.port}"]
    config.graceful_timeout = 5.0
    app = create_app(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)

    asyncio.run(main())


async def migrate() -> None:
    """Create the service database if missing, then apply pending migrations."""
    url = ReminderSettings().database_url
    name = urlsplit(url).path.lstrip("/")
    if name:
        await ensure_database(with_database(url, "postgres"), name)
    await migrate_url(url)
