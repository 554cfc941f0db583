"""Every setting the code reads is set where a deployment needs it, and every TASKFLOW_*
variable a deployment sets is read by some setting (a typo would be silently ignored)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.conftest import OVERLAYS
from tests.deploy.settings_inventory import EnvVar, env_vars
from tests.deploy.test_compose import TASKFLOW_PROCESSES

# Read outside pydantic-settings: observability (logs) and the container entrypoint.
READ_ELSEWHERE = {
    "TASKFLOW_LOG_FORMAT",
    "TASKFLOW_LOG_LEVEL",
    "TASKFLOW_RECOVERY_DIR",
    "TASKFLOW_SNAPSHOT_SECONDS",
    "TASKFLOW_BACKUP_SECONDS",
}
SHARED_PREFIXES = ("TASKFLOW_KAFKA_", "TASKFLOW_")  # every process reads these
WORKLOAD_PREFIX = {
    "task-api": "TASKFLOW_TASK_API_",
    "notify": "TASKFLOW_NOTIFY_",
    "notify-worker": "TASKFLOW_NOTIFY_",
    "audit": "TASKFLOW_AUDIT_",
    "audit-flow": "TASKFLOW_AUDIT_",
    "reminders": "TASKFLOW_REMINDERS_",
    "reminders-flow": "TASKFLOW_REMINDERS_",
}
COMPOSE_PREFIX = {**WORKLOAD_PREFIX, "migrate": "ALL"}


def needed_by(prefix: str) -> list[EnvVar]:
    return [
        var
        for var in env_vars()
        if var.must_set and (var.prefix in SHARED_PREFIXES or prefix in ("ALL", var.prefix))
    ]


def known_names() -> set[str]:
    return {name for var in env_vars() for name in var.names} | READ_ELSEWHERE


def test_the_inventory_finds_the_settings_of_every_service() -> None:
    prefixes = {var.prefix for var in env_vars()}
    assert set(WORKLOAD_PREFIX.values()) | set(SHARED_PREFIXES) <= prefixes
    names = {var.name for var in env_vars() if var.must_set}
    assert {
        "TASKFLOW_JWT_SECRET",
        "TASKFLOW_KAFKA_BOOTSTRAP",
        "TASKFLOW_TASK_API_DATABASE_URL",
    } <= names


def test_compose_sets_what_each_process_needs(compose: dict[str, Any]) -> None:
    for name in [*TASKFLOW_PROCESSES, "migrate"]:
        env = compose["services"][name]["environment"]
        for var in needed_by(COMPOSE_PREFIX[name]):
            assert set(var.names) & set(env), f"compose {name}: {var.name} ({var.owner}) unset"
        unknown = {k for k in env if k.startswith("TASKFLOW_")} - known_names()
        assert not unknown, f"compose {name} sets variables nothing reads: {unknown}"


def _container_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> set[str]:
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref is not None, "envFrom only from ConfigMaps (secrets by key, explicitly)"
        names |= set(config_maps[ref["name"]]["data"])
    return names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_sets_what_each_workload_needs(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    docs = rendered[overlay]
    seen = set()
    for workload in docs:
        if workload["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        name = workload["metadata"]["name"]
        seen.add(name)
        pod = workload["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            env = _container_env(docs, container)
            for var in needed_by(WORKLOAD_PREFIX[name]):
                assert set(var.names) & env, f"{overlay} {name}/{container['name']}: {var.name}"
            unknown = {k for k in env if k.startswith("TASKFLOW_")} - known_names()
            assert not unknown, f"{overlay} {name} sets variables nothing reads: {unknown}"
    assert seen == set(WORKLOAD_PREFIX)
