"""The whole system started the way a user starts it (`taskflow up`), wired to the test's
PostgreSQL, broker and OTLP receiver, on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deploy.broker import free_port

JWT_SECRET = "observability-test-secret-0123456789abcdef"  # noqa: S105 - test only

# service.name -> (`taskflow serve` name, settings prefix)
SERVICES = {
    "taskflow-task-service": ("task-api", "TASKFLOW_TASK_API_"),
    "taskflow-notification-service": ("notify", "TASKFLOW_NOTIFY_"),
    "taskflow-audit-service": ("audit", "TASKFLOW_AUDIT_"),
    "taskflow-reminder-service": ("reminders", "TASKFLOW_REMINDERS_"),
}
FLOWS = {
    "taskflow-audit-flow": "TASKFLOW_AUDIT_FLOW_METRICS_PORT",
    "taskflow-reminder-flow": "TASKFLOW_REMINDERS_FLOW_METRICS_PORT",
}
# service.name (the Prometheus job) -> its log file under <data-dir>/logs
LOG_FILES = {name: serve for name, (serve, _) in SERVICES.items()} | {
    "taskflow-audit-flow": "audit-flow",
    "taskflow-reminder-flow": "reminders-flow",
}


@dataclass
class RunningSystem:
    data_dir: Path
    env: dict[str, str]
    ports: dict[str, int]  # service.name -> port of its /metrics
    process: subprocess.Popen[bytes]
    topic_namespace: str
    pending: list[str] = field(default_factory=list)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def metrics_url(self, service: str) -> str:
        return f"{self.url(service)}/metrics"

    def logs(self, component: str) -> str:
        path = self.data_dir / "logs" / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def json_logs(self, service: str) -> list[dict[str, object]]:
        """The JSON lines of one process's log (the launcher's own lines are not JSON)."""
        found = []
        for line in self.logs(LOG_FILES[service]).splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
        return [doc for doc in found if isinstance(doc, dict)]

    def all_logs(self) -> str:
        parts = []
        for path in sorted((self.data_dir / "logs").glob("*.log")):
            parts.append(f"===== {path.name} (last 40 lines)\n")
            parts.append("\n".join(path.read_text(errors="replace").splitlines()[-40:]))
        return "\n".join(parts)


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _poll(system: RunningSystem, checks: dict[str, str], deadline: float) -> list[str]:
    """Poll the URLs until all answer 200, the process dies or the deadline passes."""
    while True:
        pending = [name for name, url in checks.items() if _get(url) != 200]
        if not pending or system.process.poll() is not None or time.monotonic() > deadline:
            return pending
        time.sleep(0.25)


def _wait_ready(system: RunningSystem, deadline: float, flow_grace: float = 15.0) -> None:
    """Every service's /readyz, then every flow's /metrics (a shorter wait: a flow that
    serves no metrics is reported by the tests that need them, not by a long timeout)."""
    services = {name: f"{system.url(name)}/readyz" for name in SERVICES}
    system.pending = _poll(system, services, deadline)
    flows = {name: system.metrics_url(name) for name in FLOWS}
    system.pending += _poll(system, flows, min(deadline, time.monotonic() + flow_grace))


@contextmanager
def run_system(
    *,
    admin_url: str,
    database_urls: Mapping[str, str],  # settings prefix -> database URL
    bootstrap: str,
    otlp_endpoint: str,
    data_dir: Path,
    ready_timeout: float = 120.0,
) -> Iterator[RunningSystem]:
    """Start `taskflow up`; yield once everything answers (or the deadline passed); stop it."""
    namespace = f"obs{uuid.uuid4().hex[:8]}."
    ports = {name: free_port() for name in [*SERVICES, *FLOWS]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKFLOW_"))}
    env |= {
        "TASKFLOW_ENV": "local",
        "TASKFLOW_JWT_SECRET": JWT_SECRET,
        "TASKFLOW_DATABASE_URL": admin_url,
        "TASKFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "TASKFLOW_KAFKA_TOPIC_NAMESPACE": namespace,
        "TASKFLOW_KAFKA_PARTITIONS": "3",
        "TASKFLOW_LOG_FORMAT": "json",
        # The audit flow logs each event it reads at DEBUG only (a line per event).
        "TASKFLOW_LOG_LEVELS": "pipelines.audit.decode=DEBUG",
        "TASKFLOW_UP_READY_TIMEOUT": str(ready_timeout),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans reach the receiver quickly
        "PYTHONUNBUFFERED": "1",
    }
    env |= dict(database_urls)
    for name, (_, prefix) in SERVICES.items():
        env[f"{prefix}PORT"] = str(ports[name])
    for name, variable in FLOWS.items():
        env[variable] = str(ports[name])
    data_dir.mkdir(parents=True, exist_ok=True)
    out = open(data_dir / "up.out", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "up", "--data-dir", str(data_dir)],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    system = RunningSystem(data_dir, env, ports, process, namespace)
    try:
        _wait_ready(system, time.monotonic() + ready_timeout)
        yield system
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # `taskflow up` stops its children itself
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        out.close()
