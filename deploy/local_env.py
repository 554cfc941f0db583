"""What `taskflow up` runs and with which environment: the data dir layout, the generated
secrets it keeps there, the per-service databases and the child process specs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.supervisor import ChildSpec


@dataclass(frozen=True, slots=True)
class Service:
    name: str  # as in `taskflow serve <name>`
    prefix: str  # its settings' env prefix
    database: str
    default_port: int

    def port(self, env: Mapping[str, str]) -> int:
        return int(env.get(f"{self.prefix}PORT", self.default_port))


@dataclass(frozen=True, slots=True)
class Dataflow:
    name: str
    flow: str  # bytewax import path
    service: str  # the service whose settings (and database) it shares
    recovery: str  # sub-directory of <data-dir>/recovery


SERVICES = (
    Service("task-api", "TASKFLOW_TASK_API_", "taskflow_tasks", 8001),
    Service("notify", "TASKFLOW_NOTIFY_", "taskflow_notify", 8002),
    Service("audit", "TASKFLOW_AUDIT_", "taskflow_audit", 8003),
    Service("reminders", "TASKFLOW_REMINDERS_", "taskflow_reminders", 8004),
)
DATAFLOWS = (
    Dataflow("audit-flow", "pipelines.audit:flow", "audit", "audit"),
    Dataflow("reminders-flow", "pipelines.reminders:flow", "reminders", "reminders"),
)
COMPONENTS = tuple(s.name for s in SERVICES) + tuple(d.name for d in DATAFLOWS)


# Topics on the broker `taskflow up` starts: one partition each. One machine runs one
# consumer of each topic anyway, and every extra partition is another consumer that polls
# Tansu (Bytewax opens one per partition): 6 partitions cost ~6x the idle broker CPU.
# TASKFLOW_KAFKA_PARTITIONS overrides it; a real cluster keeps its own count.
LOCAL_PARTITIONS = 1


def local_partitions(environ: Mapping[str, str]) -> int:
    """The partition count for topics on the broker `taskflow up` started."""
    return int(environ.get("TASKFLOW_KAFKA_PARTITIONS", LOCAL_PARTITIONS))


class UpSettings(BaseSettings):
    """`TASKFLOW_UP_*`: knobs of the launcher itself (all optional)."""

    model_config = SettingsConfigDict(env_prefix="TASKFLOW_UP_", extra="ignore")

    broker_port: int = 9092
    ready_timeout: float = 120.0
    stop_timeout: float = 15.0
    # Run only some components (comma-separated names), e.g. while a service is unfinished.
    components: str = ",".join(COMPONENTS)
    # Run the outbox relay (`taskflow relay`), the notification worker and the WebSocket hub
    # as processes of their own, as a deployment scales them, so each can fail (or be
    # killed, as the chaos suite does) alone. Off: one process per service.
    split_processes: bool = False
    # The notification worker's own HTTP port (probes, metrics) when split.
    notify_worker_port: int = 8005

    def selected(self) -> tuple[str, ...]:
        names = tuple(n.strip() for n in self.components.split(",") if n.strip())
        unknown = sorted(set(names) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown components {unknown}; known: {', '.join(COMPONENTS)}")
        return tuple(n for n in COMPONENTS if n in names)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a local run keeps things, all under one data dir."""

    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def lock(self) -> Path:
        return self.root / "up.lock"

    @property
    def pids(self) -> Path:
        return self.root / "pids.json"

    @property
    def vapid(self) -> Path:
        return self.root / "vapid.json"

    def recovery(self, flow: Dataflow) -> Path:
        return self.root / "recovery" / flow.recovery


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def vapid_keys(path: Path) -> dict[str, str]:
    """The run's VAPID key pair (raw base64url, as Web Push expects), made on first use."""
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        keys = {
            "private_key": _b64url(key.private_numbers().private_value.to_bytes(32, "big")),
            "public_key": _b64url(public),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(keys))
    data: dict[str, str] = json.loads(path.read_text())
    return data


def reset_recovery(directory: Path, env: Mapping[str, str], log: Path) -> None:
    """Empty and initialise a Bytewax recovery dir (one partition)."""
    shutil.rmtree(directory, ignore_errors=True)
    ensure_recovery(directory, env, log)


def ensure_recovery(directory: Path, env: Mapping[str, str], log: Path) -> None:
    """Create a Bytewax recovery dir; the flow's launcher (`python -m pipelines`) fills it
    with as many partitions as its settings say (`TASKFLOW_<FLOW>_FLOW_RECOVERY_PARTITIONS`)."""
    directory.mkdir(parents=True, exist_ok=True)


def child_env(
    base: Mapping[str, str],
    *,
    secret: str,
    bootstrap: str | None,
    database_urls: Mapping[str, str],
    vapid: Mapping[str, str],
) -> dict[str, str]:
    """Variables every child gets; anything the user set already wins (except the broker
    we started ourselves, which is the only one there is)."""
    defaults = {
        "TASKFLOW_ENV": "local",
        "TASKFLOW_JWT_SECRET": secret,
        "TASKFLOW_NOTIFY_VAPID_PRIVATE_KEY": vapid["private_key"],
        "TASKFLOW_NOTIFY_VAPID_PUBLIC_KEY": vapid["public_key"],
        "PYTHONUNBUFFERED": "1",
    }
    for service in SERVICES:
        if service.name in database_urls:
            defaults[f"{service.prefix}DATABASE_URL"] = database_urls[service.name]
    if bootstrap is not None:
        # Our own Tansu: its fetch behaviour (docs/performance.md) and a local topic size.
        defaults["TASKFLOW_KAFKA_PROFILE"] = "tansu"
        defaults["TASKFLOW_KAFKA_PARTITIONS"] = str(local_partitions(base))
    env = {key: value for key, value in defaults.items() if key not in base}
    if bootstrap is not None:
        env["TASKFLOW_KAFKA_BOOTSTRAP"] = bootstrap
    return env


PRODUCER = "task-api"


def _service_spec(
    service: Service, env: Mapping[str, str], full_env: Mapping[str, str]
) -> ChildSpec:
    port = service.port(full_env)
    url = f"http://127.0.0.1:{port}"
    return ChildSpec(
        service.name,
        [sys.executable, "-m", "deploy.cli", "serve", service.name]
        + ["--host", "127.0.0.1", "--port", str(port)],
        env,
        ready_url=f"{url}/readyz",
        where=url,
        stage="producer" if service.name == PRODUCER else "services",
    )


def _split_notify(
    service: Service, env: Mapping[str, str], full_env: Mapping[str, str], worker_port: int
) -> list[ChildSpec]:
    """The notification service as a worker process (with the channel dispatcher) and a
    hub process (WebSocket and REST on the service's port)."""
    hub = _service_spec(service, env, full_env)
    hub_env = {
        **env,
        "TASKFLOW_NOTIFY_RUN_WORKER": "false",
        "TASKFLOW_NOTIFY_RUN_DISPATCHER": "false",
    }
    worker_url = f"http://127.0.0.1:{worker_port}"
    worker = ChildSpec(
        "notify-worker",
        [*hub.argv[:-1], str(worker_port)],
        {**env, "TASKFLOW_NOTIFY_RUN_HUB": "false"},
        ready_url=f"{worker_url}/readyz",
        where=worker_url,
        stage=hub.stage,
    )
    return [worker, replace(hub, name="notify-hub", env=hub_env)]


def _split_task_api(spec: ChildSpec, env: Mapping[str, str]) -> list[ChildSpec]:
    """The task API without its in-process relay, and `taskflow relay` beside it. The relay
    is its own stage, started before the API and so stopped after it: it publishes what the
    API wrote last."""
    relay = ChildSpec(
        "relay",
        [sys.executable, "-m", "deploy.cli", "relay"],
        env,
        where="outbox relay (LISTEN taskflow_outbox)",
        stage="relay",
    )
    return [relay, replace(spec, env={**env, "TASKFLOW_TASK_API_RUN_RELAY": "false"})]


def child_specs(
    selected: Sequence[str],
    layout: Layout,
    env: Mapping[str, str],
    full_env: Mapping[str, str],
    *,
    split_worker_port: int | None = None,
) -> list[ChildSpec]:
    """Consumers first, the task service (the producer) last, so that stopping in reverse
    stops the producer first: its relay flushes the outbox while the consumers still run.

    With `split_worker_port`, the relay, the notification worker (on that port) and the
    hub run as processes of their own (`TASKFLOW_UP_SPLIT_PROCESSES`)."""
    specs: list[ChildSpec] = []
    for s in SERVICES:
        if s.name not in selected or s.name == PRODUCER:
            continue
        if s.name == "notify" and split_worker_port is not None:
            specs += _split_notify(s, env, full_env, split_worker_port)
        else:
            specs.append(_service_spec(s, env, full_env))
    for flow in DATAFLOWS:
        if flow.name in selected:
            recovery = layout.recovery(flow)
            # Scale and recovery from the flow's settings (`runtime.flow_launch`); the
            # launcher becomes `python -m bytewax.run <flow.flow> -r <recovery> ...`.
            variable = f"TASKFLOW_{flow.recovery.upper()}_FLOW_RECOVERY_DIR"
            specs.append(
                ChildSpec(
                    flow.name,
                    [sys.executable, "-m", "pipelines", flow.recovery],
                    {**env, variable: str(recovery)},
                    where=f"recovery {recovery}",
                    stage="dataflows",
                )
            )
    for s in SERVICES:
        if s.name == PRODUCER and s.name in selected:
            spec = _service_spec(s, env, full_env)
            specs += [spec] if split_worker_port is None else _split_task_api(spec, env)
    return specs


def database_services(selected: Sequence[str]) -> list[Service]:
    """Services whose database a selection needs (a dataflow uses its service's)."""
    needed = set(selected) | {f.service for f in DATAFLOWS if f.name in selected}
    return [s for s in SERVICES if s.name in needed]


def external_database(env: Mapping[str, str] = os.environ) -> str | None:
    """`TASKFLOW_DATABASE_URL`: one existing server with a database per service."""
    return env.get("TASKFLOW_DATABASE_URL") or None


def external_kafka(env: Mapping[str, str] = os.environ) -> str | None:
    """`TASKFLOW_KAFKA_BOOTSTRAP`: an existing cluster, so no local broker is started."""
    return env.get("TASKFLOW_KAFKA_BOOTSTRAP") or None
